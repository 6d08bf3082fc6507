//! Typed identifiers, so an `AgentId` can never be passed where a `ConversationId` is meant.
//! They are UUIDs in PostgreSQL and opaque strings in the API.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Uuid as SqlUuid;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_newtype {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = SqlUuid)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl ToSql<SqlUuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <Uuid as ToSql<SqlUuid, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<SqlUuid, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <Uuid as FromSql<SqlUuid, Pg>>::from_sql(bytes).map(Self)
            }
        }
    )*};
}

id_newtype! {
    /// An agent, supervisor or admin.
    AgentId;
    /// A sign-in session.
    SessionId;
    /// A service: one entry point on one channel.
    ServiceId;
    /// A pause reason.
    PauseReasonId;
    /// A customer (person or company).
    CustomerId;
    /// A channel identity (channel + address -> customer).
    ChannelIdentityId;
    /// A WhatsApp contact for outbound messages.
    WhatsappContactId;
    /// A case ("ocorrência").
    CaseId;
    /// A classification of finished conversations.
    ClassificationId;
    /// A service type (form).
    ServiceTypeId;
    /// A conversation.
    ConversationId;
    /// A message.
    MessageId;
    /// An attachment.
    AttachmentId;
    /// A canned message.
    CannedMessageId;
    /// An email template.
    EmailTemplateId;
    /// A WhatsApp template.
    WhatsappTemplateId;
    /// A field of a service type's form.
    FormFieldId;
    /// One answer of a conversation's form.
    FormAnswerId;
    /// A webchat visitor (the customer address of its conversations).
    VisitorId;
}
