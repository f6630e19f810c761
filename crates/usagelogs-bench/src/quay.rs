//! Quay's side: the same rows in a table shaped like Quay's `logentry3`, with Quay's four
//! indexes, and Quay's own queries for the same questions, timed from the client.

use diesel::connection::SimpleConnection;
use diesel::pg::{CopyFormat, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamp};
use std::time::{Duration, Instant};
use time::PrimitiveDateTime;

use crate::Error;
use crate::generate::{Universe, write_timestamp};
use crate::load::Latency;

diesel::table! {
    logentry3 (id) {
        id -> BigInt,
        kind_id -> Integer,
        account_id -> Integer,
        performer_id -> Nullable<Integer>,
        repository_id -> Nullable<Integer>,
        datetime -> Timestamp,
        ip -> Nullable<Text>,
        metadata_json -> Text,
    }
}

/// Quay's `logentry3` (reference §7.1), without its rows.
const CREATE_TABLE: &str = "
DROP TABLE IF EXISTS logentry3;
CREATE TABLE logentry3 (
    id            BIGSERIAL PRIMARY KEY,
    kind_id       INTEGER NOT NULL,
    account_id    INTEGER NOT NULL,
    performer_id  INTEGER NULL,
    repository_id INTEGER NULL,
    datetime      TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    ip            VARCHAR(255) NULL,
    metadata_json TEXT NOT NULL
);";

/// Quay's four indexes (reference §7.1).
const CREATE_INDEXES: &str = "
CREATE INDEX logentry3_datetime ON logentry3 (datetime);
CREATE INDEX logentry3_account_id_datetime ON logentry3 (account_id, datetime);
CREATE INDEX logentry3_performer_id_datetime ON logentry3 (performer_id, datetime);
CREATE INDEX logentry3_repository_id_datetime_kind_id ON logentry3 (repository_id, datetime, kind_id);";

/// How long loading took.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub rows: u64,
    pub copy: Duration,
    pub indexes: Duration,
    pub analyze: Duration,
}

/// Creates `logentry3` and loads every generated row with `COPY FROM`, then builds the indexes and
/// runs `VACUUM ANALYZE`.
pub fn load(conn: &mut PgConnection, universe: &Universe, progress: impl Fn(u64)) -> Result<Loaded, Error> {
    conn.batch_execute(CREATE_TABLE)?;
    let started = Instant::now();
    let mut rows = 0u64;
    // One COPY per ~200,000 rows: progress, and bounded buffers.
    let per_copy = (200_000 / universe.batch_size).max(1);
    let batches = universe.batches();
    let mut first = 0;
    while first < batches {
        let last = (first + per_copy).min(batches);
        let n = diesel::copy_from(logentry3::table)
            .from_raw_data(
                (
                    logentry3::kind_id,
                    logentry3::account_id,
                    logentry3::performer_id,
                    logentry3::repository_id,
                    logentry3::datetime,
                    logentry3::ip,
                    logentry3::metadata_json,
                ),
                |out| -> Result<(), diesel::result::Error> {
                    let mut buf = String::with_capacity(1 << 20);
                    let mut meta = String::new();
                    for b in first..last {
                        for e in universe.batch(b) {
                            let ids = universe.quay_ids(&e);
                            let opt = |v: Option<i32>| v.map_or_else(|| "\\N".to_owned(), |v| v.to_string());
                            buf.push_str(&format!(
                                "{}\t{}\t{}\t{}\t",
                                ids.kind,
                                ids.account,
                                opt(ids.performer),
                                opt(ids.repository)
                            ));
                            write_timestamp(&mut buf, e.micros, ' ');
                            let [a, b2, c, d] = e.ip;
                            buf.push_str(&format!("\t{a}.{b2}.{c}.{d}\t"));
                            meta.clear();
                            universe.metadata_json(&e, &mut meta);
                            // COPY's text format: backslash is the escape character.
                            buf.push_str(&meta.replace('\\', "\\\\"));
                            buf.push('\n');
                        }
                        if buf.len() > (1 << 20) {
                            out.write_all(buf.as_bytes()).map_err(io_error)?;
                            buf.clear();
                        }
                    }
                    out.write_all(buf.as_bytes()).map_err(io_error)?;
                    Ok(())
                },
            )
            .with_format(CopyFormat::Text)
            .execute(conn)?;
        rows += n as u64;
        progress(rows);
        first = last;
    }
    let copy = started.elapsed();
    let t = Instant::now();
    conn.batch_execute(CREATE_INDEXES)?;
    let indexes = t.elapsed();
    let t = Instant::now();
    conn.batch_execute("VACUUM ANALYZE logentry3")?;
    // As on our side: ingestion's dirty pages are written before the timed queries (best effort:
    // CHECKPOINT needs a privileged role).
    let _ = conn.batch_execute("CHECKPOINT");
    Ok(Loaded { rows, copy, indexes, analyze: t.elapsed() })
}

fn io_error(e: std::io::Error) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}

/// A row as Quay's list query reads it.
#[derive(Debug, QueryableByName)]
#[allow(dead_code)] // fetched to make the database do the work; not inspected
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    kind_id: i32,
    #[diesel(sql_type = Integer)]
    account_id: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    performer_id: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    repository_id: Option<i32>,
    #[diesel(sql_type = Timestamp)]
    datetime: PrimitiveDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Text)]
    metadata_json: String,
}

/// A (kind, day-of-month) count of Quay's aggregate.
#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct DayCount {
    #[diesel(sql_type = Integer)]
    kind_id: i32,
    #[diesel(sql_type = Double)]
    day: f64,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[derive(Debug, QueryableByName)]
struct Boundary {
    #[diesel(sql_type = Timestamp)]
    datetime: PrimitiveDateTime,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The scope of a question: a namespace (`account_id`) or a repository (`repository_id`).
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Account(i32),
    Repository(i32),
}

/// An extra filter on a list or an aggregate.
#[derive(Debug, Clone, Copy)]
pub enum Filter {
    None,
    Performer(i32),
    Kind(i32),
}

/// Quay's list and aggregate queries over one window `[start, end)`.
#[derive(Debug)]
pub struct Queries {
    pub start: PrimitiveDateTime,
    pub end: PrimitiveDateTime,
}

impl Queries {
    fn scope_sql(scope: Scope) -> (&'static str, i32) {
        match scope {
            Scope::Account(id) => ("account_id = $1", id),
            Scope::Repository(id) => ("repository_id = $1", id),
        }
    }

    /// The filter's condition (on parameter `$4`) and value.
    fn filter_sql(filter: Filter) -> (&'static str, Option<i32>) {
        match filter {
            Filter::None => ("", None),
            Filter::Performer(id) => (" AND performer_id = $4", Some(id)),
            Filter::Kind(id) => (" AND kind_id = $4", Some(id)),
        }
    }

    /// Times Quay's list query (§7.2: filter, `ORDER BY datetime DESC LIMIT 21`) `runs` times,
    /// with `OFFSET offset`, returning the latencies and the rows of the last run.
    pub fn list(
        &self,
        conn: &mut PgConnection,
        scope: Scope,
        filter: Filter,
        offset: i64,
        runs: usize,
    ) -> Result<(Latency, usize), Error> {
        let (scope_sql, scope_id) = Self::scope_sql(scope);
        let (filter_sql, filter_id) = Self::filter_sql(filter);
        let offset_sql = if offset > 0 { format!(" OFFSET {offset}") } else { String::new() };
        let sql = format!(
            "SELECT id, kind_id, account_id, performer_id, repository_id, datetime, ip, metadata_json \
             FROM logentry3 WHERE {scope_sql} AND datetime >= $2 AND datetime < $3{filter_sql} \
             ORDER BY datetime DESC LIMIT 21{offset_sql}"
        );
        let run = |conn: &mut PgConnection| -> QueryResult<Vec<Row>> {
            let mut q = diesel::sql_query(&sql)
                .into_boxed::<diesel::pg::Pg>()
                .bind::<Integer, _>(scope_id)
                .bind::<Timestamp, _>(self.start)
                .bind::<Timestamp, _>(self.end);
            if let Some(id) = filter_id {
                q = q.bind::<Integer, _>(id);
            }
            q.load(conn)
        };
        time_runs(conn, runs, run)
    }

    /// Quay's own way to page 500 (reference §4): the token holds the datetime of the next
    /// page's first row and an offset among rows sharing it; the query is a keyset seek
    /// (`datetime <= boundary`) with that small offset. Returns the latencies and the offset.
    pub fn list_keyset(
        &self,
        conn: &mut PgConnection,
        account: i32,
        skip: i64,
        runs: usize,
    ) -> Result<Option<(Latency, i64)>, Error> {
        let boundary: Vec<Boundary> = diesel::sql_query(
            "SELECT datetime FROM logentry3 WHERE account_id = $1 AND datetime >= $2 AND datetime < $3 \
             ORDER BY datetime DESC OFFSET $4 LIMIT 1",
        )
        .bind::<Integer, _>(account)
        .bind::<Timestamp, _>(self.start)
        .bind::<Timestamp, _>(self.end)
        .bind::<BigInt, _>(skip)
        .load(conn)?;
        let Some(boundary) = boundary.first().map(|b| b.datetime) else { return Ok(None) };
        let ties: Vec<Count> = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT datetime FROM logentry3 WHERE account_id = $1 AND datetime >= $2 \
             AND datetime < $3 ORDER BY datetime DESC LIMIT $4) t WHERE datetime = $5",
        )
        .bind::<Integer, _>(account)
        .bind::<Timestamp, _>(self.start)
        .bind::<Timestamp, _>(self.end)
        .bind::<BigInt, _>(skip)
        .bind::<Timestamp, _>(boundary)
        .load(conn)?;
        let offset = ties.first().map_or(0, |c| c.n);
        let sql = "SELECT id, kind_id, account_id, performer_id, repository_id, datetime, ip, metadata_json \
                   FROM logentry3 WHERE account_id = $1 AND datetime >= $2 AND datetime <= $3 \
                   ORDER BY datetime DESC LIMIT 21 OFFSET $4";
        let run = |conn: &mut PgConnection| -> QueryResult<Vec<Row>> {
            diesel::sql_query(sql)
                .bind::<Integer, _>(account)
                .bind::<Timestamp, _>(self.start)
                .bind::<Timestamp, _>(boundary)
                .bind::<BigInt, _>(offset)
                .load(conn)
        };
        Ok(Some((time_runs(conn, runs, run)?.0, offset)))
    }

    /// Times Quay's aggregate (§7.2 and §4: `COUNT(id)` grouped by kind and day of month).
    pub fn aggregate(
        &self,
        conn: &mut PgConnection,
        scope: Scope,
        filter: Filter,
        runs: usize,
    ) -> Result<(Latency, usize), Error> {
        let (scope_sql, scope_id) = Self::scope_sql(scope);
        let (filter_sql, filter_id) = Self::filter_sql(filter);
        let sql = format!(
            "SELECT kind_id, EXTRACT(day FROM datetime)::float8 AS day, COUNT(id) AS count FROM logentry3 \
             WHERE {scope_sql} AND datetime >= $2 AND datetime < $3{filter_sql} \
             GROUP BY kind_id, EXTRACT(day FROM datetime)"
        );
        let run = |conn: &mut PgConnection| -> QueryResult<Vec<DayCount>> {
            let mut q = diesel::sql_query(&sql)
                .into_boxed::<diesel::pg::Pg>()
                .bind::<Integer, _>(scope_id)
                .bind::<Timestamp, _>(self.start)
                .bind::<Timestamp, _>(self.end);
            if let Some(id) = filter_id {
                q = q.bind::<Integer, _>(id);
            }
            q.load(conn)
        };
        time_runs(conn, runs, run)
    }
}

/// Longest time one question's timed runs may take: slow scans stop early (after at least
/// [`MIN_RUNS`] runs) so a 10-million-row run stays within minutes.
const BUDGET: Duration = Duration::from_secs(20);
const MIN_RUNS: usize = 5;

/// One untimed warm-up run, then up to `runs` timed ones (fewer when they exceed [`BUDGET`]).
fn time_runs<T>(
    conn: &mut PgConnection,
    runs: usize,
    run: impl Fn(&mut PgConnection) -> QueryResult<Vec<T>>,
) -> Result<(Latency, usize), Error> {
    let mut rows = run(conn)?.len();
    let mut samples = Vec::with_capacity(runs);
    let started = Instant::now();
    for i in 0..runs.max(1) {
        if i >= MIN_RUNS && started.elapsed() > BUDGET {
            break;
        }
        let t = Instant::now();
        rows = run(conn)?.len();
        samples.push(t.elapsed());
    }
    Ok((Latency::of(samples), rows))
}
