//! What can go wrong in the store, with the cause kept (never erased into a string).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; `constraint` names it (an invariant of the model).
    #[error("conflict with an existing row ({constraint})")]
    Conflict { constraint: String },
    /// A foreign key refused the write: a referenced row does not exist or is still referenced.
    #[error("reference to a missing or still-referenced row ({constraint})")]
    Reference { constraint: String },
    /// A CHECK or NOT NULL constraint refused the value.
    #[error("value refused by the data model ({constraint})")]
    Invalid { constraint: String },
    /// Two transactions collided; retrying is safe.
    #[error("serialization failure, retry")]
    Retry,
    /// No connection could be had from the pool in time (the database is down or saturated).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(#[source] DieselError),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The name of the constraint that refused a write, when one did.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Conflict { constraint }
            | StoreError::Reference { constraint }
            | StoreError::Invalid { constraint } => Some(constraint),
            _ => None,
        }
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(kind, info) => {
                let constraint = info.constraint_name().unwrap_or("").to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => StoreError::Conflict { constraint },
                    DatabaseErrorKind::ForeignKeyViolation => StoreError::Reference { constraint },
                    DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                        StoreError::Invalid { constraint }
                    }
                    DatabaseErrorKind::SerializationFailure => StoreError::Retry,
                    DatabaseErrorKind::ClosedConnection => StoreError::Unavailable(info.message().to_owned()),
                    // Text PostgreSQL cannot store (a NUL character): bad input, not a failure.
                    _ if ["invalid byte sequence", "0x00", "unsupported Unicode escape sequence", "\\u0000"]
                        .iter()
                        .any(|m| info.message().contains(m)) =>
                    {
                        StoreError::Invalid { constraint: "text_without_nul".into() }
                    }
                    other => StoreError::Database(DieselError::DatabaseError(other, info)),
                }
            }
            other => StoreError::Database(other),
        }
    }
}

/// True for a database error that retrying on a fresh connection may cure.
pub fn is_transient(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
            | DieselError::BrokenTransactionManager
    )
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
