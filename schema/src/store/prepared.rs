//! Hand-written SQL kept as a prepared statement per connection.
//!
//! diesel never caches a `sql_query`: it cannot know the text is the same each time, so
//! PostgreSQL parses, analyses and plans it on every call. The hot ones here have a fixed text
//! (their variable parts are arrays or JSON in bind parameters), so [`prepared`] lets diesel's
//! statement cache key them by that text. Measured at 5,000 messages/s with the load harness's
//! fixed load (`pg_stat_statements`): planning alone was 84 µs per call of `mark_many_sent`, 30 µs
//! per call of `ingest_into_open`, parsing and analysis coming on top.
//!
//! Only for a text that never changes between calls (a text built at run time would fill the
//! cache with one statement per variant), and only for a call of a PL/pgSQL function that keeps
//! its own plans index-bound. PostgreSQL settles on a generic plan for a prepared statement after
//! a few calls and keeps it: for a plain `UPDATE … FROM unnest($1)` of `messages`, the plan made
//! while the table was small is a sequential scan with a hash join, thirty times slower once the
//! table has grown. The functions (see the migrations) turn sequential scans and hash joins off
//! for exactly that reason.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A query (a `sql_query` with its binds) run as a cached prepared statement.
#[derive(Debug, Clone, Copy)]
#[must_use = "Queries are only executed when calling `load`, `get_result` or similar."]
pub(crate) struct Prepared<Q>(Q);

/// Runs `query` as a statement prepared once per connection; its SQL text must be constant.
pub(crate) fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No type-level id: the cache keys the statement by its SQL text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}
