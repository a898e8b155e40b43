//! `highwater check` and `highwater indexes`: prove each table can be read incrementally.
//!
//! For every configured table: SELECT works, the cursor column's type, an index whose leftmost
//! column is the cursor, and `EXPLAIN` of the real extraction statement at a daemon's window
//! (after `NOW(6) - lag - poll_interval`, up to `NOW(6) - lag`) showing a range scan on that
//! index with no filesort. Where the index is missing, the `CREATE INDEX` that adds it online
//! and the `DROP INDEX` that rolls it back.

use super::config::MysqlSourceConfig;
use highwater_pipeline::ident::quote;
use highwater_pipeline::schema::TableSchema;
use highwater_pipeline::source::SourceError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

use super::bound::OpenTransactions;
use super::clock::{CursorClock, CursorZone};
use super::connect::{self, query_error};
use super::discover::discover;
use super::query::TableQueries;
use highwater_pipeline::cursor::DateTime;

const INDEXES_SQL: &str = "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX";

const ENGINE_SQL: &str = "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// What `check` found for one table. `problems` empty means the table is ready.
#[derive(Debug, Clone)]
pub struct TableCheck {
    pub table: String,
    pub cursor: String,
    /// The cursor column's type, e.g. `datetime(6)`, and whether it admits NULL.
    pub cursor_type: String,
    pub cursor_nullable: bool,
    /// The zone the cursor's values are read in (`UTC` for `TIMESTAMP` columns).
    pub zone: String,
    /// An index whose leftmost column is the cursor: its name and columns.
    pub index: Option<(String, Vec<String>)>,
    pub plan: Option<Plan>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// The statements that add the missing index, and roll it back.
    pub fix: Option<IndexFix>,
}

/// The first row of `EXPLAIN` of the extraction statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `range`, `ref`, `index`, `ALL`...
    pub access: String,
    pub key: Option<String>,
    pub rows: Option<u64>,
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexFix {
    pub create: String,
    pub rollback: String,
}

impl TableCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every configured table. Only a connection failure is an error; what is wrong with a
/// table is reported in its [`TableCheck`].
pub async fn check(config: &MysqlSourceConfig) -> Result<Vec<TableCheck>, SourceError> {
    let pool = connect::open(config, None).await?;
    let mut conn = pool.get().await?;
    let database = config.url.database().unwrap_or_default().to_owned();
    let zone = match CursorZone::resolve(&mut conn, config.time_zone.as_deref()).await {
        Ok(zone) => Ok(zone),
        Err(e @ SourceError::UnknownTimeZone { .. }) => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    let mut checks = Vec::with_capacity(config.tables.len());
    for i in 0..config.tables.len() {
        checks.push(check_table(&mut conn, config, &database, i, &zone).await?);
    }
    if let OpenTransactions::Hidden(why) = OpenTransactions::probe(&mut conn).await? {
        for c in &mut checks {
            c.notes.push(why.clone());
        }
    }
    drop(conn);
    // Closing politely only spares the server an aborted-connection note.
    let _ = pool.disconnect().await;
    Ok(checks)
}

async fn check_table(
    conn: &mut Conn,
    config: &MysqlSourceConfig,
    database: &str,
    index: usize,
    local: &Result<CursorZone, String>,
) -> Result<TableCheck, SourceError> {
    let t = &config.tables[index];
    let mut check = TableCheck {
        table: format!("{database}.{}", t.name),
        cursor: t.cursor.clone(),
        cursor_type: String::new(),
        cursor_nullable: false,
        zone: String::new(),
        index: None,
        plan: None,
        problems: Vec::new(),
        notes: Vec::new(),
        fix: None,
    };
    let found = match discover(conn, database, t, &format!("source.tables[{index}]")).await {
        Ok(found) => found,
        Err(e @ SourceError::Pool(_)) => {
            return Err(e);
        }
        Err(e) => {
            check.problems.push(e.to_string());
            return Ok(check);
        }
    };
    let schema = found.schema;
    if let Some(name) = &t.soft_delete
        && let Err(e) = super::table::soft_delete_column(&schema, name, index)
    {
        check.problems.push(e.to_string());
    }
    let cursor = schema.cursor_column();
    check.cursor = cursor.name.clone();
    check.cursor_type = cursor.source_type.clone();
    check.cursor_nullable = cursor.source_nullable;
    if cursor.source_nullable {
        check.notes.push(format!(
            "{} admits NULL: rows inserted with it NULL are read at each pass; their later changes are seen once it is set",
            cursor.name
        ));
    }
    let clock = match (found.epoch, local) {
        (Some(unit), _) => CursorClock::epoch(unit),
        (None, Ok(local)) => CursorClock::of_column(&cursor.source_type, local),
        (None, Err(why)) => {
            check.problems.push(why.clone());
            return Ok(check);
        }
    };
    check.zone = clock.zone().name().to_owned();
    if let Some(unit) = found.epoch {
        check.notes.push(format!(
            "{} counts Unix time in {}: its values are UTC instants, and a unit's rows are read once it is over",
            cursor.name,
            unit.as_str()
        ));
        match newest_instant(conn, &schema, &clock).await? {
            Ok(Some(at)) => check.notes.push(format!("its newest value is {at} UTC")),
            Ok(None) => {}
            Err(why) => check.problems.push(format!("{}: {why}", cursor.name)),
        }
    } else if cursor.source_type == "date" {
        check
            .notes
            .push(format!("{} is a DATE: a day's rows are read once that day is over in {}", cursor.name, check.zone));
    } else if !cursor.source_type.contains('(') {
        check.notes.push(format!(
            "{} has whole-second precision: a second's rows are read once that second is over",
            cursor.name
        ));
    }
    let qualified = format!("{}.{}", quote(database), quote(&t.name));
    if let Err(e) = conn.query_drop(format!("SELECT 1 FROM {qualified} LIMIT 0")).await {
        check.problems.push(format!("cannot SELECT from {}: {e}", check.table));
        return Ok(check);
    }

    let rows: Vec<(String, String)> = conn
        .exec(INDEXES_SQL, (database, &t.name))
        .await
        .map_err(|e| query_error(format!("the indexes of {}", check.table), e))?;
    let indexes = group_indexes(rows);
    let engine: Option<String> = conn
        .exec_first(ENGINE_SQL, (database, &t.name))
        .await
        .map_err(|e| query_error(format!("the engine of {}", check.table), e))?;
    let engine = engine.unwrap_or_default();
    let transactional = engine.eq_ignore_ascii_case("InnoDB");
    if !transactional && !engine.is_empty() {
        check.notes.push(format!(
            "engine {engine} has no transactions: rows show as they are written, so no open transaction holds a \
             pass; only lag_secs covers the rows of a statement still running"
        ));
    }
    // InnoDB ends every secondary index with the primary key; other engines do not, and
    // `ORDER BY cursor, key` needs the key in the index itself.
    let mut needed = vec![cursor.name.clone()];
    if !transactional {
        needed.extend(schema.key_columns().map(|c| c.name.clone()));
    }
    let serves =
        |cols: &[String]| cols.len() >= needed.len() && needed.iter().zip(cols).all(|(a, b)| a.eq_ignore_ascii_case(b));
    let serving: Vec<&(String, Vec<String>)> = indexes.iter().filter(|(_, cols)| serves(cols)).collect();
    check.index = serving.iter().min_by_key(|(_, cols)| cols.len()).map(|i| (*i).clone());

    if found.incrementing {
        check.notes.push(format!(
            "read by its increasing key {} alone: new rows are seen, changes to existing rows are not",
            cursor.name
        ));
    }
    let plan = explain(conn, &schema, found.incrementing, config, &clock).await?;
    // A table read by its primary key alone needs no other index.
    if !found.incrementing && check.index.is_some() {
        check.problems.extend(plan_problems(&plan, &serving));
    } else if !found.incrementing {
        let why = if transactional {
            String::new()
        } else {
            format!(", which engine {engine} needs for ORDER BY cursor, key")
        };
        check.problems.push(format!(
            "no index on ({}){why}: every pass scans or sorts the table (run highwater indexes --apply)",
            needed.join(", ")
        ));
        let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
        let columns: Vec<&str> = needed.iter().map(String::as_str).collect();
        check.fix = Some(index_fix(database, &t.name, &columns, &names, transactional));
        if !transactional {
            check.notes.push(format!(
                "engine {engine} cannot add an index online: the CREATE INDEX blocks writes to the table while it runs"
            ));
        }
    }
    check.plan = Some(plan);
    Ok(check)
}

/// What is wrong with `plan` when one of `serving` (the indexes that serve the read) exists:
/// another index or no range scan, or a filesort.
fn plan_problems(plan: &Plan, serving: &[&(String, Vec<String>)]) -> Vec<String> {
    let mut problems = Vec::new();
    let used = plan.key.as_deref().is_some_and(|k| serving.iter().any(|(n, _)| n == k));
    if !used || !matches!(plan.access.as_str(), "range" | "ref") {
        let names: Vec<&str> = serving.iter().map(|(n, _)| n.as_str()).collect();
        problems.push(format!(
            "EXPLAIN shows access {} on key {}, not a range scan on {}",
            plan.access,
            plan.key.as_deref().unwrap_or("none"),
            names.join(" or ")
        ));
    }
    if plan.extra.contains("filesort") {
        problems.push("EXPLAIN shows a filesort".into());
    }
    problems
}

/// Runs the statements one at a time, reporting each as it completes: (statement, seconds) or
/// the server's refusal. One that fails does not stop the others; the count of failures is
/// returned.
pub async fn apply(
    config: &MysqlSourceConfig,
    statements: &[String],
    mut done: impl FnMut(&str, Result<f64, String>),
) -> Result<usize, SourceError> {
    let pool = connect::open(config, None).await?;
    let mut conn = pool.get().await?;
    let mut failed = 0;
    for statement in statements {
        let started = std::time::Instant::now();
        match conn.query_drop(statement).await {
            Ok(()) => done(statement, Ok(started.elapsed().as_secs_f64())),
            Err(mysql_async::Error::Server(e)) => {
                failed += 1;
                done(statement, Err(format!("ERROR {}: {}", e.code, e.message)));
            }
            Err(e) => return Err(query_error(format!("the result of {statement}"), e)),
        }
    }
    drop(conn);
    // Closing politely only spares the server an aborted-connection note.
    let _ = pool.disconnect().await;
    Ok(failed)
}

/// `EXPLAIN` of the extraction statement over the window of one poll before the bound a pass
/// would take now (in the cursor's zone and unit). Key values are NULL: the plan's choice of
/// index depends on the cursor range.
async fn explain(
    conn: &mut Conn,
    schema: &TableSchema,
    incrementing: bool,
    config: &MysqlSourceConfig,
    cursor: &CursorClock,
) -> Result<Plan, SourceError> {
    let what = || format!("EXPLAIN on {}", schema.id);
    let queries = TableQueries::new(schema, config.batch_rows);
    if incrementing {
        // The window of a pass is the keys after the highest one.
        let key = quote(&schema.cursor_column().name);
        let table = format!("{}.{}", quote(&schema.id.database), quote(&schema.id.table));
        let max: Option<Value> =
            conn.exec_first(format!("SELECT MAX({key}) FROM {table}"), ()).await.map_err(|e| query_error(what(), e))?;
        let rows: Vec<Row> = conn
            .exec(format!("EXPLAIN {}", queries.key_after), Params::Positional(vec![max.unwrap_or(Value::Int(0))]))
            .await
            .map_err(|e| query_error(what(), e))?;
        return first_plan(rows).map_err(|e| query_error(what(), e));
    }
    let clock: Option<Value> = conn
        .query_first(format!("SELECT NOW(6) - INTERVAL {} SECOND", config.lag_secs))
        .await
        .map_err(|e| query_error(what(), e))?;
    let clock = super::decode::datetime(&clock.unwrap_or(Value::NULL)).map_err(|reason| SourceError::Query {
        what: what(),
        retryable: false,
        source: reason.into(),
    })?;
    let (bound, _) = cursor.bound(conn, clock, clock).await?;
    let poll = i64::try_from(config.poll_interval_secs.max(1)).unwrap_or(i64::MAX / 4_000_000) * 1_000_000;
    let after =
        bound.unix_micros().map_or(bound, |b| DateTime::from_unix_micros(b - poll - cursor.step().unwrap_or(0)));
    let after = cursor.param(&after);
    let mut params = vec![after.clone(), after];
    params.extend(std::iter::repeat_n(Value::NULL, 2 * schema.key.len() - 1));
    params.push(cursor.param(&bound));
    let rows: Vec<Row> = conn
        .exec(format!("EXPLAIN {}", queries.cursor_after), Params::Positional(params))
        .await
        .map_err(|e| query_error(what(), e))?;
    first_plan(rows).map_err(|e| query_error(what(), e))
}

/// The instant the cursor's highest value stands for, or why it stands for none.
async fn newest_instant(
    conn: &mut Conn,
    schema: &TableSchema,
    clock: &CursorClock,
) -> Result<Result<Option<DateTime>, String>, SourceError> {
    let sql = format!(
        "SELECT MAX({}) FROM {}.{}",
        quote(&schema.cursor_column().name),
        quote(&schema.id.database),
        quote(&schema.id.table)
    );
    let max: Option<Value> =
        conn.query_first(sql).await.map_err(|e| query_error(format!("the newest row of {}", schema.id), e))?;
    Ok(match max {
        None | Some(Value::NULL) => Ok(None),
        Some(v) => clock.value(&v).map(Some),
    })
}

/// The plan of the first table of `EXPLAIN` output.
fn first_plan(rows: Vec<Row>) -> Result<Plan, mysql_async::Error> {
    let first = rows.into_iter().next().ok_or(mysql_async::Error::Other("EXPLAIN returned nothing".into()))?;
    let column = |name: &str| -> Option<String> {
        let i = first.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name))?;
        match first.as_ref(i)? {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Int(v) => Some(v.to_string()),
            Value::UInt(v) => Some(v.to_string()),
            _ => None,
        }
    };
    Ok(Plan {
        access: column("type").unwrap_or_default(),
        key: column("key"),
        rows: column("rows").and_then(|r| r.parse().ok()),
        extra: column("Extra").unwrap_or_default(),
    })
}

/// `(index, columns)` pairs from rows ordered by index and position.
fn group_indexes(rows: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match out.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => out.push((index, vec![column])),
        }
    }
    out
}

/// The `CREATE INDEX` on `columns` (the cursor, and for engines other than InnoDB the primary
/// key after it: InnoDB appends the key to every secondary index, so `(cursor)` serves
/// `ORDER BY cursor, key`) and its rollback; `online` for engines that build it without
/// blocking writes (InnoDB).
pub fn index_fix(database: &str, table: &str, columns: &[&str], existing: &[&str], online: bool) -> IndexFix {
    let mut name = format!("idx_{}", columns.first().copied().unwrap_or_default());
    if columns.len() > 1 {
        name.push_str("_key");
    }
    if existing.iter().any(|e| e.eq_ignore_ascii_case(&name)) {
        name.push_str("_hw");
    }
    let (name, target) = (quote(&name), format!("{}.{}", quote(database), quote(table)));
    let how = if online { " ALGORITHM=INPLACE LOCK=NONE" } else { "" };
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    IndexFix {
        create: format!("CREATE INDEX {name} ON {target} ({}){how}", columns.join(", ")),
        rollback: format!("DROP INDEX {name} ON {target}{how}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_are_online_and_reversible() {
        let fix = index_fix("matomo", "matomo_log_visit", &["visit_last_action_time"], &["PRIMARY"], true);
        assert_eq!(
            fix.create,
            "CREATE INDEX `idx_visit_last_action_time` ON `matomo`.`matomo_log_visit` (`visit_last_action_time`) \
             ALGORITHM=INPLACE LOCK=NONE"
        );
        assert_eq!(
            fix.rollback,
            "DROP INDEX `idx_visit_last_action_time` ON `matomo`.`matomo_log_visit` ALGORITHM=INPLACE LOCK=NONE"
        );
        let taken = index_fix("d", "t", &["c"], &["idx_c"], true);
        assert!(taken.create.starts_with("CREATE INDEX `idx_c_hw`"));
        // Other engines: the key in the index, and no online clause they would refuse.
        let myisam = index_fix("d", "t", &["c", "id"], &[], false);
        assert_eq!(myisam.create, "CREATE INDEX `idx_c_key` ON `d`.`t` (`c`, `id`)");
        assert_eq!(myisam.rollback, "DROP INDEX `idx_c_key` ON `d`.`t`");
    }

    #[test]
    fn indexes_group_in_order() {
        let rows = vec![("PRIMARY".into(), "id".into()), ("k".into(), "a".into()), ("k".into(), "b".into())];
        assert_eq!(
            group_indexes(rows),
            [("PRIMARY".to_owned(), vec!["id".to_owned()]), ("k".to_owned(), vec!["a".to_owned(), "b".to_owned()])]
        );
    }
}
