//! A first copy read in parallel key ranges: the plan (what is read, what is in flight) and
//! the read of one range, on a connection and in a snapshot of its own.

use highwater_mysql::Pool;
use highwater_pipeline::cursor::{DateTime, KeyValue, Position};
use highwater_pipeline::source::SourceError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::config::ZeroDates;
use super::connect::query_error;
use super::page::{Page, Phase, Query, Shape, read, snapshot};
use super::ranges::{InFlight, PARALLEL, Ranges};
use super::table::Table;

/// A first copy being read in key ranges: where it stands and what is being read.
pub(super) struct CopyPlan {
    pub(super) table: usize,
    /// The copy's bound.
    pub(super) bound: DateTime,
    /// The position the runner goes on from when it takes the next page: any other means the
    /// plan no longer holds (a retry, a restart), and a new one starts from there.
    pub(super) expects: Position,
    pub(super) ranges: Ranges,
    pub(super) reads: InFlight<Result<Option<Page>, SourceError>>,
}

impl CopyPlan {
    /// Starts reading ranges until [`PARALLEL`] are in flight.
    pub(super) fn fill(&mut self, pool: &Pool, t: &Table, zero_dates: ZeroDates, max_rows: usize, unsigned: bool) {
        while self.reads.len() < PARALLEL {
            let Some((lo, hi)) = self.ranges.next_range() else { break };
            let task = self.spawn(pool, t, zero_dates, max_rows, lo, hi, unsigned);
            self.reads.push_back(lo, hi, task);
        }
    }

    /// Reads the rows of `(lo, hi]` at or below the bound, on a connection and in a snapshot
    /// of its own.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn(
        &self,
        pool: &Pool,
        t: &Table,
        zero_dates: ZeroDates,
        max_rows: usize,
        lo: i128,
        hi: i128,
        unsigned: bool,
    ) -> tokio::task::JoinHandle<Result<Option<Page>, SourceError>> {
        let params = vec![int_param(lo, unsigned), int_param(hi, unsigned), t.clock.param(&self.bound)];
        let (pool, schema, kinds, clock, sql, bound) = (
            pool.clone(),
            t.schema.clone(),
            t.kinds.clone(),
            t.clock.clone(),
            t.queries.copy_range.clone(),
            self.bound,
        );
        tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let id = &schema.id;
            let mut tx = snapshot(&mut conn, id).await?;
            let query = Query { sql: &sql, params, phase: Phase::Copy(bound) };
            let shape = Shape { schema: &schema, kinds: &kinds, clock: &clock };
            let page = read(&mut tx, &shape, query, max_rows, zero_dates, None).await?;
            tx.commit().await.map_err(|e| query_error(format!("the end of a read of {id}"), e))?;
            Ok(page)
        })
    }
}

/// The lowest and highest value of a table's integer key; `None` when it is empty.
pub(super) async fn key_span(conn: &mut Conn, t: &Table) -> Result<Option<(i128, i128)>, mysql_async::Error> {
    let span: Option<(Value, Value)> = conn.query_first(&t.queries.key_span).await?;
    Ok(match span.map(|(a, b)| (value_int(&a), value_int(&b))) {
        Some((Some(min), Some(max))) => Some((min, max)),
        _ => None,
    })
}

/// An integer key value, widened.
pub(super) fn key_int(k: &KeyValue) -> Option<i128> {
    match k {
        KeyValue::Int(v) => Some(i128::from(*v)),
        KeyValue::UInt(v) => Some(i128::from(*v)),
        _ => None,
    }
}

pub(super) fn value_int(v: &Value) -> Option<i128> {
    match v {
        Value::Int(v) => Some(i128::from(*v)),
        Value::UInt(v) => Some(i128::from(*v)),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A key value of an integer column (`unsigned`: `BIGINT UNSIGNED` and smaller unsigned).
pub(super) fn int_key(k: i128, unsigned: bool) -> KeyValue {
    if unsigned { KeyValue::UInt(k as u64) } else { KeyValue::Int(k as i64) }
}

pub(super) fn int_param(k: i128, unsigned: bool) -> Value {
    match u64::try_from(k) {
        Ok(v) if unsigned => Value::UInt(v),
        _ => Value::Int(k as i64),
    }
}
