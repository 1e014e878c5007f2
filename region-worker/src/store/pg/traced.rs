//! The pool every store function takes its Postgres connections from, and the
//! connection and transaction it hands out: thin wrappers over deadpool-postgres's
//! with the same method names and signatures, so that each statement gets its own
//! span while traces are exported (issue 19).
//!
//! With traces off a statement costs what it costs unwrapped plus one relaxed load
//! ([`shared::telemetry::tracing_on`]): no span, no parsing, no allocation. On, and
//! inside a request's trace ([`shared::telemetry::in_trace`]), each statement is a
//! client span named by a low-cardinality summary of its SQL text ("SELECT users",
//! "INSERT INTO audit_events"), with the verb as `db.operation.name`. The summary is
//! read from the statement's keywords and identifiers only: a parameter, a literal or
//! a comment never reaches a span.
//!
//! Not spanned: [`Client::prepare_cached`], a cache lookup but for a connection's first
//! use of a statement, whose one Parse round trip then falls outside any statement span.
//! Start-up work that needs the driver's own client ([`Client::as_driver_mut`]:
//! migrations, the region stamp) runs outside any request and is not spanned either.

use std::fmt;
use std::future::Future;

use deadpool_postgres::PoolError;
use shared::telemetry::{self, TRACE_TARGET};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, SimpleQueryMessage, ToStatement};
use tracing::Instrument as _;
use tracing::field::Empty;

/// The region's Postgres pool. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Pool(deadpool_postgres::Pool);

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pool").field(&self.0.status()).finish()
    }
}

impl Pool {
    /// Wraps a built pool.
    pub(super) fn new(pool: deadpool_postgres::Pool) -> Self {
        Self(pool)
    }

    /// Takes a connection, waiting for one up to the pool's timeout. Inside a trace the
    /// wait is a `postgres checkout` span (a long one means the pool is exhausted),
    /// marked `closedloop.pg.new_connection` when a connection was opened for it.
    pub async fn get(&self) -> Result<Client, PoolError> {
        if !telemetry::in_trace() {
            return self.0.get().await.map(Client);
        }
        let span = tracing::info_span!(
            target: TRACE_TARGET,
            "postgres",
            otel.name = "postgres checkout",
            otel.kind = "internal",
            db.system.name = "postgresql",
            closedloop.region = telemetry::region(),
            closedloop.pg.new_connection = false,
        );
        let result = self.0.get().instrument(span.clone()).await;
        if result.is_err() {
            telemetry::set_error(&span, "pool");
        }
        result.map(Client)
    }

    /// The pool's occupancy (for the pool gauges).
    pub fn status(&self) -> deadpool_postgres::Status {
        self.0.status()
    }
}

/// Marks the current `postgres checkout` span (if any) as having opened a new
/// connection: called from the pool's `post_create` hook, which runs inside
/// [`Pool::get`].
pub(super) fn opened_connection() {
    if telemetry::tracing_on() {
        tracing::Span::current().record("closedloop.pg.new_connection", true);
    }
}

/// A pooled connection, back to the pool when dropped.
pub struct Client(deadpool_postgres::Object);

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// A transaction on a pooled connection: rolled back when dropped uncommitted.
pub struct Transaction<'a>(deadpool_postgres::Transaction<'a>);

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

/// A prepared statement (from [`Client::prepare_cached`]), with the summary its spans
/// are named by: the SQL text is not kept by tokio-postgres.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The driver's statement.
    inner: tokio_postgres::Statement,
    /// The verb and summary of its text, read only while traces are exported.
    summary: Option<(&'static str, Box<str>)>,
}

impl Statement {
    fn new(inner: tokio_postgres::Statement, sql: &str) -> Self {
        let summary = telemetry::tracing_on().then(|| {
            let s = Summary::of(sql);
            (s.verb, s.to_string().into_boxed_str())
        });
        Self { inner, summary }
    }
}

/// What a statement can be given as: SQL text, or a statement prepared here.
pub trait Query: Sync + Send {
    /// What the driver takes.
    type Driver: ?Sized + ToStatement + Sync + Send;
    /// The statement for the driver.
    fn driver(&self) -> &Self::Driver;
    /// Starts the span of one execution, when inside a trace.
    fn span(&self) -> Option<tracing::Span>;
}

impl Query for str {
    type Driver = str;
    fn driver(&self) -> &str {
        self
    }
    fn span(&self) -> Option<tracing::Span> {
        telemetry::in_trace().then(|| {
            let s = Summary::of(self);
            statement_span(s.verb, &s.to_string())
        })
    }
}

impl Query for String {
    type Driver = str;
    fn driver(&self) -> &str {
        self
    }
    fn span(&self) -> Option<tracing::Span> {
        self.as_str().span()
    }
}

impl Query for Statement {
    type Driver = tokio_postgres::Statement;
    fn driver(&self) -> &tokio_postgres::Statement {
        &self.inner
    }
    fn span(&self) -> Option<tracing::Span> {
        if !telemetry::in_trace() {
            return None;
        }
        let (verb, summary) = self
            .summary
            .as_ref()
            .map_or(("OTHER", "OTHER"), |(v, s)| (*v, s));
        Some(statement_span(verb, summary))
    }
}

/// The span of one statement.
fn statement_span(verb: &'static str, summary: &str) -> tracing::Span {
    tracing::info_span!(
        target: TRACE_TARGET,
        "postgres",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = verb,
        db.query.summary = summary,
        closedloop.region = telemetry::region(),
        db.response.status_code = Empty,
    )
}

/// Runs `statement` (spanned when `span` is some), marking the span failed with the
/// error's kind.
async fn run<R>(
    span: Option<tracing::Span>,
    statement: impl Future<Output = Result<R, Error>>,
) -> Result<R, Error> {
    let Some(span) = span else {
        return statement.await;
    };
    let result = statement.instrument(span.clone()).await;
    if let Err(e) = &result {
        if let Some(code) = e.code() {
            span.record("db.response.status_code", code.code());
        }
        telemetry::set_error(&span, error_kind(e));
    }
    result
}

/// An error's kind for `error.type`: never its message, which may quote a value.
fn error_kind(e: &Error) -> &'static str {
    if e.is_closed() {
        "connection_closed"
    } else if e.as_db_error().is_some() {
        "db_error"
    } else {
        "postgres"
    }
}

/// A span named after a fixed command (`BEGIN`, `COMMIT`...), when inside a trace.
fn command_span(verb: &'static str) -> Option<tracing::Span> {
    telemetry::in_trace().then(|| statement_span(verb, verb))
}

/// The statements a [`Client`] and a [`Transaction`] both run, for store functions
/// that work on either (`&impl GenericClient`).
pub trait GenericClient: Sync {
    /// Like [`tokio_postgres::Client::query`].
    fn query<T: ?Sized + Query>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    /// Like [`tokio_postgres::Client::query_one`].
    fn query_one<T: ?Sized + Query>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;

    /// Like [`tokio_postgres::Client::query_opt`].
    fn query_opt<T: ?Sized + Query>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;

    /// Like [`tokio_postgres::Client::execute`].
    fn execute<T: ?Sized + Query>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Like [`deadpool_postgres::Client::prepare_cached`].
    fn prepare_cached(&self, query: &str) -> impl Future<Output = Result<Statement, Error>> + Send;

    /// Like [`tokio_postgres::Client::batch_execute`].
    fn batch_execute(&self, query: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The same statement methods, spanned, on a client and a transaction (which both
/// deref to their driver type).
macro_rules! statements {
    ($ty:ty) => {
        impl $ty {
            /// Like [`tokio_postgres::Client::query`], spanned.
            pub async fn query<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                run(statement.span(), self.0.query(statement.driver(), params)).await
            }

            /// Like [`tokio_postgres::Client::query_one`], spanned.
            pub async fn query_one<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                run(
                    statement.span(),
                    self.0.query_one(statement.driver(), params),
                )
                .await
            }

            /// Like [`tokio_postgres::Client::query_opt`], spanned.
            pub async fn query_opt<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                run(
                    statement.span(),
                    self.0.query_opt(statement.driver(), params),
                )
                .await
            }

            /// Like [`tokio_postgres::Client::execute`], spanned.
            pub async fn execute<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                run(statement.span(), self.0.execute(statement.driver(), params)).await
            }

            /// Like [`tokio_postgres::Client::query_raw`], spanned until the first
            /// rows arrive (the stream is the caller's to read).
            pub async fn query_raw<T, P, I>(
                &self,
                statement: &T,
                params: I,
            ) -> Result<tokio_postgres::RowStream, Error>
            where
                T: ?Sized + Query,
                P: tokio_postgres::types::BorrowToSql,
                I: IntoIterator<Item = P>,
                I::IntoIter: ExactSizeIterator,
            {
                run(
                    statement.span(),
                    self.0.query_raw(statement.driver(), params),
                )
                .await
            }

            /// Like [`tokio_postgres::Client::batch_execute`], spanned (one span for
            /// the batch, named by its first statement).
            pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
                run(query.span(), self.0.batch_execute(query)).await
            }

            /// Like [`tokio_postgres::Client::simple_query`], spanned.
            pub async fn simple_query(
                &self,
                query: &str,
            ) -> Result<Vec<SimpleQueryMessage>, Error> {
                run(query.span(), self.0.simple_query(query)).await
            }

            /// Like [`deadpool_postgres::Client::prepare_cached`]: the statement from
            /// the connection's cache, prepared on first use.
            pub async fn prepare_cached(&self, query: &str) -> Result<Statement, Error> {
                let inner = self.0.prepare_cached(query).await?;
                Ok(Statement::new(inner, query))
            }
        }

        impl GenericClient for $ty {
            fn query<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
                <$ty>::query(self, statement, params)
            }

            fn query_one<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, Error>> + Send {
                <$ty>::query_one(self, statement, params)
            }

            fn query_opt<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
                <$ty>::query_opt(self, statement, params)
            }

            fn execute<T: ?Sized + Query>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, Error>> + Send {
                <$ty>::execute(self, statement, params)
            }

            fn prepare_cached(
                &self,
                query: &str,
            ) -> impl Future<Output = Result<Statement, Error>> + Send {
                <$ty>::prepare_cached(self, query)
            }

            fn batch_execute(&self, query: &str) -> impl Future<Output = Result<(), Error>> + Send {
                <$ty>::batch_execute(self, query)
            }
        }
    };
}

statements!(Client);
statements!(Transaction<'_>);

impl Client {
    /// Starts a transaction (a `BEGIN` span).
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        run(command_span("BEGIN"), self.0.transaction())
            .await
            .map(Transaction)
    }

    /// Whether the connection is gone (the server closed it, or it broke).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// The connection's statement cache (so a caller that prepares statements of many
    /// shapes can bound it).
    pub fn statement_cache(&self) -> &deadpool_postgres::StatementCache {
        &self.0.statement_cache
    }

    /// The driver's client, for start-up work that takes one (migrations, the region
    /// stamp): statements run through it directly are not spanned.
    pub fn as_driver_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.0
    }

    /// Takes the connection out of the pool for good: for a connection whose session
    /// state (an advisory lock, say) must not reach the next caller.
    pub fn detach(self) {
        drop(deadpool_postgres::Object::take(self.0));
    }
}

impl Transaction<'_> {
    /// Commits (a `COMMIT` span).
    pub async fn commit(self) -> Result<(), Error> {
        run(command_span("COMMIT"), self.0.commit()).await
    }

    /// Rolls back (a `ROLLBACK` span); dropping does the same without waiting.
    pub async fn rollback(self) -> Result<(), Error> {
        run(command_span("ROLLBACK"), self.0.rollback()).await
    }
}

/// A statement's low-cardinality summary: its verb and the table it is about, read
/// from keywords and identifiers at the top nesting level. Nothing else of the text
/// (literals, parameters, comments, column lists) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary<'a> {
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `WITH`... or `OTHER`.
    verb: &'static str,
    /// For `WITH`, the main statement's verb.
    main: Option<&'static str>,
    /// The table the statement reads or writes (`FROM`, `INTO`, `UPDATE` target).
    table: Option<&'a str>,
}

/// The verbs a statement is summarised by; anything else is `OTHER`.
const VERBS: [&str; 19] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "WITH",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "LOCK",
    "SET",
    "SHOW",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "COPY",
    "VALUES",
];

impl<'a> Summary<'a> {
    fn of(sql: &'a str) -> Self {
        let mut words = Words::new(sql);
        let verb = match words.next() {
            Some(Token::Word(w)) => VERBS
                .iter()
                .find(|v| v.eq_ignore_ascii_case(w))
                .copied()
                .unwrap_or("OTHER"),
            _ => "OTHER",
        };
        let mut summary = Self {
            verb,
            main: None,
            table: None,
        };
        let mut current = verb;
        if verb == "WITH" {
            // The main statement: the first verb at the top level after the CTEs.
            loop {
                match words.next() {
                    None => return summary,
                    Some(Token::Word(w)) => {
                        if let Some(v) = ["SELECT", "INSERT", "UPDATE", "DELETE"]
                            .iter()
                            .find(|v| v.eq_ignore_ascii_case(w))
                        {
                            summary.main = Some(v);
                            current = v;
                            break;
                        }
                    }
                    Some(Token::Other) => {}
                }
            }
        }
        // The keyword the table follows at the top level.
        let after = match current {
            "SELECT" | "DELETE" => "FROM",
            "INSERT" => "INTO",
            "UPDATE" => "UPDATE",
            _ => return summary,
        };
        if current == "UPDATE" {
            summary.table = words.next().and_then(Token::identifier);
            return summary;
        }
        while let Some(token) = words.next() {
            if matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(after)) {
                summary.table = words.next().and_then(Token::identifier);
                break;
            }
        }
        summary
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb)?;
        if let Some(main) = self.main {
            write!(f, " {main}")?;
        }
        if let Some(table) = self.table {
            write!(f, " {table}")?;
        }
        Ok(())
    }
}

/// A token at the top nesting level of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A bare word: a keyword or an unquoted identifier (`users`, `public.users`).
    Word(&'a str),
    /// Anything else (a literal, a parameter, punctuation, a quoted identifier).
    Other,
}

impl<'a> Token<'a> {
    /// The word, if it can name a table (not a keyword that starts a subquery).
    fn identifier(self) -> Option<&'a str> {
        match self {
            Token::Word(w)
                if w.len() <= 63
                    && !["SELECT", "LATERAL", "ONLY"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(w)) =>
            {
                Some(w)
            }
            _ => None,
        }
    }
}

/// The top-level tokens of a statement: parenthesised parts, string literals, quoted
/// identifiers and comments are skipped whole.
struct Words<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Self { sql, at: 0 }
    }

    /// Skips past the byte `close`, treating `''`/`""` inside as escapes.
    fn skip_quoted(&mut self, close: u8) {
        let bytes = self.sql.as_bytes();
        while self.at < bytes.len() {
            let b = bytes[self.at];
            self.at += 1;
            if b == close {
                if bytes.get(self.at) == Some(&close) {
                    self.at += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// Skips a parenthesised part (the opening one already read), with what nests in it.
    fn skip_parens(&mut self) {
        let bytes = self.sql.as_bytes();
        let mut depth = 1usize;
        while self.at < bytes.len() && depth > 0 {
            let b = bytes[self.at];
            self.at += 1;
            match b {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\'' | b'"' => self.skip_quoted(b),
                b'-' if bytes.get(self.at) == Some(&b'-') => self.skip_line(),
                b'/' if bytes.get(self.at) == Some(&b'*') => self.skip_block(),
                _ => {}
            }
        }
    }

    fn skip_line(&mut self) {
        let bytes = self.sql.as_bytes();
        while self.at < bytes.len() && bytes[self.at] != b'\n' {
            self.at += 1;
        }
    }

    fn skip_block(&mut self) {
        match self.sql[self.at..].find("*/") {
            Some(end) => self.at += end + 2,
            None => self.at = self.sql.len(),
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.sql.as_bytes();
        loop {
            let b = *bytes.get(self.at)?;
            self.at += 1;
            match b {
                b if b.is_ascii_whitespace() => {}
                b'-' if bytes.get(self.at) == Some(&b'-') => self.skip_line(),
                b'/' if bytes.get(self.at) == Some(&b'*') => self.skip_block(),
                b'(' => {
                    self.skip_parens();
                    return Some(Token::Other);
                }
                b'\'' | b'"' => {
                    self.skip_quoted(b);
                    return Some(Token::Other);
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = self.at - 1;
                    while bytes
                        .get(self.at)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
                    {
                        self.at += 1;
                    }
                    // A word glued to a quote is a prefixed literal (E'...', B'...').
                    if bytes.get(self.at) == Some(&b'\'') {
                        self.at += 1;
                        self.skip_quoted(b'\'');
                        return Some(Token::Other);
                    }
                    return Some(Token::Word(&self.sql[start..self.at]));
                }
                b'$' => {
                    // A parameter ($1) or a dollar-quoted literal ($$...$$, $tag$...$tag$).
                    let start = self.at;
                    while bytes
                        .get(self.at)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    {
                        self.at += 1;
                    }
                    if bytes.get(self.at) == Some(&b'$') {
                        let tag = &self.sql[start - 1..=self.at];
                        self.at += 1;
                        match self.sql[self.at..].find(tag) {
                            Some(end) => self.at += end + tag.len(),
                            None => self.at = self.sql.len(),
                        }
                    }
                    return Some(Token::Other);
                }
                _ => {
                    // Digits, operators, punctuation: one token per run of them.
                    while bytes.get(self.at).is_some_and(|b| {
                        !(b.is_ascii_whitespace()
                            || b.is_ascii_alphabetic()
                            || matches!(b, b'_' | b'(' | b'\'' | b'"' | b'$' | b'-' | b'/'))
                    }) {
                        self.at += 1;
                    }
                    return Some(Token::Other);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sql: &str) -> String {
        Summary::of(sql).to_string()
    }

    #[test]
    fn statements_are_named_by_verb_and_table() {
        assert_eq!(
            summary("SELECT id, user_name FROM users WHERE team_id = $1"),
            "SELECT users"
        );
        assert_eq!(
            summary("insert into audit_events (team_id) values ($1)"),
            "INSERT audit_events"
        );
        assert_eq!(
            summary("UPDATE users SET active = $3 WHERE id = $2"),
            "UPDATE users"
        );
        assert_eq!(
            summary("DELETE FROM group_members WHERE group_id = $1"),
            "DELETE group_members"
        );
        assert_eq!(summary("SELECT pg_advisory_lock($1)"), "SELECT");
        assert_eq!(
            summary(
                "WITH gone AS (DELETE FROM tokens WHERE at < $1 RETURNING id) INSERT INTO revocations SELECT id FROM gone"
            ),
            "WITH INSERT revocations"
        );
        assert_eq!(
            summary("  -- note\n  SELECT 1 FROM public.roles"),
            "SELECT public.roles"
        );
        assert_eq!(summary("BEGIN"), "BEGIN");
        assert_eq!(summary("VACUUM users"), "OTHER");
        assert_eq!(summary(""), "OTHER");
    }

    #[test]
    fn nested_parts_literals_and_comments_never_name_a_statement() {
        // A FROM inside a function call or subquery is not the statement's table.
        assert_eq!(
            summary(
                "SELECT EXTRACT(epoch FROM at), (SELECT count(*) FROM secrets) FROM audit_events"
            ),
            "SELECT audit_events"
        );
        assert_eq!(summary("SELECT * FROM (SELECT 1) AS t"), "SELECT");
        // Words inside literals, quoted identifiers, dollar quotes and comments are skipped.
        for sql in [
            "SELECT 'x FROM alice' FROM users",
            "SELECT E'it''s FROM bob' FROM users",
            "SELECT $tag$ FROM carol $tag$ FROM users",
            "SELECT /* FROM dave */ a FROM users",
            "SELECT \"FROM\" FROM users",
            "SELECT a -- FROM erin\n FROM users",
        ] {
            assert_eq!(summary(sql), "SELECT users", "{sql}");
        }
        assert_eq!(summary("SELECT 1 FROM 'alice@example.com'"), "SELECT");
        assert_eq!(summary("DELETE FROM $1"), "DELETE");
        assert_eq!(summary("SELECT 1 FROM \"Users\""), "SELECT");
        // Unterminated pieces end the scan, never panic.
        for sql in [
            "SELECT 'x",
            "SELECT (",
            "SELECT $a$ x",
            "SELECT /* x",
            "SELECT \"x",
            "é FROM ü",
        ] {
            let _ = summary(sql);
        }
    }

    #[test]
    fn statements_are_not_read_while_traces_are_off() {
        // This test process exports no traces: a statement carries no summary.
        assert!(!telemetry::tracing_on());
        assert_eq!("SELECT 1".span().map(|_| ()), None);
    }
}
