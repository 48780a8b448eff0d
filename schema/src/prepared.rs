//! Hand-written SQL that Diesel's query builder cannot express (data-modifying CTEs), kept as
//! prepared statements.
//!
//! `diesel::sql_query` is never cached: PostgreSQL parses and plans it on every call. A query
//! type declared with [`prepared_query!`] has a static query id, so each connection prepares
//! it once and then only binds and executes it. Its `QueryFragment` pushes the SQL text and
//! the binds in order (`push_bind_param` numbers the placeholders); rows come back through
//! `QueryableByName`.

/// Makes a struct with a hand-written `QueryFragment<Pg>` a cached, runnable query whose rows
/// are read by name. The struct may take one lifetime parameter (borrowed binds).
macro_rules! prepared_query {
    ($name:ident) => {
        impl diesel::query_builder::QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::Query for $name {
            type SqlType = diesel::sql_types::Untyped;
        }

        impl<Conn> diesel_async::RunQueryDsl<Conn> for $name {}
    };
    ($name:ident<'_>) => {
        impl diesel::query_builder::QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::Query for $name<'_> {
            type SqlType = diesel::sql_types::Untyped;
        }

        impl<Conn> diesel_async::RunQueryDsl<Conn> for $name<'_> {}
    };
}

pub(crate) use prepared_query;
