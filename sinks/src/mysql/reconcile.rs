//! Reconciling a MySQL sink with its MySQL source (`highwater reconcile`): find the rows the
//! sink still holds that the source deleted (polling by cursor never sees a hard delete), and
//! delete them.
//!
//! Per table, by ranges of the first primary-key column (an integer):
//! 1. one aggregate per side, sink first: `COUNT(*)` and `BIT_XOR(CRC32(key))` per range
//!    of about `--chunk-rows` keys (1,000 by default); only two numbers per range cross the
//!    network;
//! 2. the keys of the ranges that differ, from both sides;
//! 3. keys in the sink and not in the source are read again from the source, and deleted from
//!    the sink in batches (each its own transaction) only if still absent, and only in the
//!    version the sink held when it was read (its cursor value): a key deleted and inserted
//!    again meanwhile, and replicated, keeps its new row.
//!
//! Keys in the source and not in the sink are counted: replication brings them, except those
//! whose cursor is NULL and that no pass reads again (see `NullsRead`), which are named apart.
//!
//! The sink is read before the source: a row inserted into the source (and replicated) in
//! between shows as missing from the sink, never as deleted. What the servers scan is the
//! table, once per side; what is transferred and compared follows the difference.

use std::collections::{BTreeMap, BTreeSet};

use highwater_mysql::Pool;
use highwater_pipeline::config::DbUrl;
use highwater_pipeline::ident::quote;
use highwater_pipeline::pool::{PoolConfig, Tls};
use highwater_pipeline::schema::TableId;
use highwater_pipeline::sink::SinkError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::config::MysqlSinkConfig;

/// Keys per DELETE statement.
const DELETE_BATCH: usize = 500;

/// The sessions of both sides: 4-byte text intact.
const SESSION_SETUP: [&str; 1] = ["SET NAMES utf8mb4"];

/// What reconciling one table found and did.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub ranges: usize,
    pub differing: usize,
    pub keys_fetched: usize,
    pub deleted: usize,
    /// In the source, not (yet) in the sink: replication will bring them...
    pub missing: usize,
    /// ...but these, whose cursor is NULL: no pass reads them again.
    pub missing_null_cursor: usize,
}

/// A MySQL source and the MySQL sink it feeds, each with a pool.
pub struct Reconciler {
    source: Pool,
    sink: Pool,
    source_db: String,
    sink_db: String,
}

impl Reconciler {
    /// Connects to the source (`url`, `pool`, `tls` of its config) and to the sink.
    pub async fn open(url: &DbUrl, pool: &PoolConfig, tls: &Tls, sink: &MysqlSinkConfig) -> Result<Self, SinkError> {
        let source = Pool::open_tls(url, pool, tls, "source", &SESSION_SETUP, None).await?;
        let sink_pool = Pool::open_tls(&sink.url, &sink.pool, &sink.tls(), "sink", &SESSION_SETUP, None).await?;
        Ok(Reconciler {
            source,
            sink: sink_pool,
            source_db: url.database().unwrap_or_default().to_owned(),
            sink_db: sink.url.database().unwrap_or_default().to_owned(),
        })
    }

    /// Reconciles `table`, whose cursor column is `cursor` (see the module's note).
    pub async fn table(
        &self,
        table: &str,
        cursor: &str,
        chunk_rows: u64,
        dry_run: bool,
    ) -> Result<Reconciled, SinkError> {
        let id = TableId { database: self.source_db.clone(), table: table.to_owned() };
        let mut src = self.source.get().await?;
        let mut dst = self.sink.get().await?;
        let dbs = (self.source_db.as_str(), self.sink_db.as_str());
        reconcile_table(&mut src, &mut dst, dbs, (table, cursor), chunk_rows, dry_run).await.map_err(|e| match e {
            Failed::Query(e) => {
                SinkError::Database { what: format!("reconciling {id}"), retryable: false, source: Box::new(e) }
            }
            Failed::Refused(reason) => SinkError::Data { table: id, reason },
        })
    }

    pub async fn close(self) {
        let _ = self.source.disconnect().await;
        let _ = self.sink.disconnect().await;
    }
}

/// Why a table could not be reconciled.
enum Failed {
    Query(mysql_async::Error),
    /// The table does not fit the method: why.
    Refused(String),
}

impl From<mysql_async::Error> for Failed {
    fn from(e: mysql_async::Error) -> Self {
        Failed::Query(e)
    }
}

async fn reconcile_table(
    src: &mut Conn,
    dst: &mut Conn,
    (source_db, sink_db): (&str, &str),
    (table, cursor): (&str, &str),
    chunk_rows: u64,
    dry_run: bool,
) -> Result<Reconciled, Failed> {
    let keys: Vec<(String, String)> = src
        .exec(
            "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.STATISTICS k JOIN information_schema.COLUMNS c \
             ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.INDEX_NAME = 'PRIMARY' ORDER BY k.SEQ_IN_INDEX",
            (source_db, table),
        )
        .await?;
    let Some((first, first_type)) = keys.first() else {
        return Err(Failed::Refused("the source table has no primary key".into()));
    };
    if !["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&first_type.as_str()) {
        return Err(Failed::Refused(format!(
            "reconcile splits tables by ranges of an integer first key column; {first} is {first_type}"
        )));
    }
    let key_list = keys.iter().map(|(k, _)| quote(k)).collect::<Vec<_>>().join(", ");
    let k = quote(first);
    let c = quote(cursor);
    let source_table = format!("{}.{}", quote(source_db), quote(table));
    let sink_table = format!("{}.{}", quote(sink_db), quote(table));

    // Ranges of about `chunk_rows` keys, from the key span and the server's row estimate.
    let span = format!("SELECT CAST(MIN({k}) AS DECIMAL(20)), CAST(MAX({k}) AS DECIMAL(20)) FROM ");
    let (lo_s, hi_s) = min_max(src, &format!("{span}{source_table}")).await?;
    let (lo_d, hi_d) = min_max(dst, &format!("{span}{sink_table}")).await?;
    let (Some(lo), Some(hi)) = (opt_min(lo_s, lo_d), opt_max(hi_s, hi_d)) else { return Ok(Reconciled::default()) };
    let estimate: Option<u64> = src
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (source_db, table),
        )
        .await?;
    let rows = estimate.unwrap_or(1).max(1) as i128;
    let width = (((hi - lo + 1) * i128::from(chunk_rows)) / rows).max(1);

    let aggregate = |t: &str| {
        format!(
            "SELECT CAST(({k} - {lo}) DIV {width} AS SIGNED) AS r, COUNT(*), \
             BIT_XOR(CRC32(CONCAT_WS(0x1f, {key_list}))) FROM {t} GROUP BY r"
        )
    };
    // The sink first: see the module's note.
    let sink_ranges: Vec<(i64, u64, u64)> = dst.query(aggregate(&sink_table)).await?;
    let source_ranges: Vec<(i64, u64, u64)> = src.query(aggregate(&source_table)).await?;
    let all: BTreeSet<(i64, u64, u64)> = sink_ranges.iter().chain(&source_ranges).copied().collect();
    let differing: BTreeSet<i64> = all
        .iter()
        .filter(|r| !(sink_ranges.contains(r) && source_ranges.contains(r)))
        .map(|(range, _, _)| *range)
        .collect();

    let mut result = Reconciled {
        ranges: all.iter().map(|r| r.0).collect::<BTreeSet<_>>().len(),
        differing: differing.len(),
        ..Default::default()
    };
    for range in differing {
        let from = lo + i128::from(range) * width;
        let within = format!("WHERE {k} >= {from} AND {k} < {}", from + width);
        let keys_of = |t: &str| format!("SELECT {key_list}, {c} FROM {t} {within}");
        let in_sink = literal_keys(dst.query(keys_of(&sink_table)).await?);
        let in_source = literal_keys(src.query(keys_of(&source_table)).await?);
        result.keys_fetched += in_sink.len() + in_source.len();
        for (key, cursor) in &in_source {
            if !in_sink.contains_key(key) {
                result.missing += 1;
                result.missing_null_cursor += usize::from(cursor == "NULL");
            }
        }
        let gone: Vec<(&String, &String)> = in_sink.iter().filter(|(key, _)| !in_source.contains_key(*key)).collect();
        if gone.is_empty() {
            continue;
        }
        // Still gone now? A row can only be absent from a later read if it was deleted.
        let again = literal_keys(src.query(keys_of(&source_table)).await?);
        let gone: Vec<(&String, &String)> = gone.into_iter().filter(|(key, _)| !again.contains_key(*key)).collect();
        result.deleted += gone.len();
        if dry_run {
            continue;
        }
        for batch in gone.chunks(DELETE_BATCH) {
            // Each row only as the sink held it: the same key with a newer cursor stays.
            let rows: Vec<String> =
                batch.iter().map(|(key, cursor)| format!("(({key_list}) = {key} AND {c} <=> {cursor})")).collect();
            let sql = format!("DELETE FROM {sink_table} WHERE {}", rows.join(" OR "));
            let mut tx = dst.start_transaction(Default::default()).await?;
            tx.query_drop(sql).await?;
            tx.commit().await?;
        }
    }
    Ok(result)
}

async fn min_max(conn: &mut Conn, sql: &str) -> Result<(Option<i128>, Option<i128>), mysql_async::Error> {
    let row: Option<Row> = conn.query_first(sql).await?;
    let Some(mut row) = row else { return Ok((None, None)) };
    let parse = |v: Option<Value>| -> Option<i128> {
        match v? {
            Value::Bytes(b) => String::from_utf8_lossy(&b).parse().ok(),
            Value::Int(n) => Some(i128::from(n)),
            Value::UInt(n) => Some(i128::from(n)),
            _ => None,
        }
    };
    Ok((parse(row.take(0)), parse(row.take(1))))
}

fn opt_min(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    a.into_iter().chain(b).min()
}

fn opt_max(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    a.into_iter().chain(b).max()
}

/// Each row's key as a SQL tuple literal, `(1, 'a')`, with its last column (the cursor) as a
/// literal: comparable, and usable in statements.
fn literal_keys(rows: Vec<Row>) -> BTreeMap<String, String> {
    rows.into_iter()
        .map(|row| {
            let mut values: Vec<String> = row.unwrap().iter().map(|v| v.as_sql(false)).collect();
            let cursor = values.pop().unwrap_or_else(|| "NULL".to_owned());
            (format!("({})", values.join(", ")), cursor)
        })
        .collect()
}
