//! `check` and `indexes` for a SQLite source: each cursor column must have an index that
//! `EXPLAIN QUERY PLAN` shows serving the pass's range, with the `CREATE INDEX` that adds one
//! and its rollback.

use rusqlite::Connection;

use super::config::SqliteSourceConfig;
use super::discover::{Cursor, Found, all_tables, discover};
use super::query::Queries;
use super::quote_sqlite;
use highwater_pipeline::source::SourceError;

/// What the check found for one table.
#[derive(Clone, Debug)]
pub struct TableCheck {
    pub table: String,
    /// The cursor column, `None` for a table copied whole.
    pub cursor: Option<String>,
    /// SQLite's plan for a pass's read.
    pub plan: String,
    pub problem: Option<String>,
    /// `(create, rollback)` of the index that would serve the cursor.
    pub fix: Option<(String, String)>,
}

impl TableCheck {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks every configured table of the file.
pub fn check(config: &SqliteSourceConfig) -> Result<Vec<TableCheck>, SourceError> {
    let source = super::SqliteSource::open(config)?;
    drop(source);
    let conn = Connection::open(&config.path).map_err(|e| super::query_error(config.path.display().to_string(), e))?;
    let names: Vec<super::config::SqliteTableConfig> = match &config.tables {
        Some(t) => t.clone(),
        None => all_tables(&conn)?
            .into_iter()
            .map(|name| super::config::SqliteTableConfig {
                name,
                cursor: None,
                cursor_unit: None,
                on_type_mismatch: None,
            })
            .collect(),
    };
    let mut checks = Vec::new();
    for (i, t) in names.iter().enumerate() {
        let found = discover(&conn, "main", t, config.mismatch_for(t), &format!("source.tables[{i}]"))?;
        checks.push(check_table(&conn, &found, config.batch_rows)?);
    }
    Ok(checks)
}

fn check_table(conn: &Connection, found: &Found, limit: usize) -> Result<TableCheck, SourceError> {
    let schema = &found.schema;
    let table = schema.id.table.clone();
    let queries = Queries::new(found, &quote_sqlite(&table), limit);
    let (sql, cursor) = match found.cursor {
        Cursor::None => (&queries.copy_after, None),
        _ => (&queries.cursor_after, Some(schema.cursor_column().name.clone())),
    };
    let plan = plan(conn, sql).map_err(|e| super::query_error(format!("EXPLAIN QUERY PLAN of {table}"), e))?;
    let mut check =
        TableCheck { table: table.clone(), cursor: cursor.clone(), plan: plan.clone(), problem: None, fix: None };
    let Some(cursor) = cursor else { return Ok(check) };
    let served = plan.starts_with("SEARCH") && !plan.contains("USE TEMP B-TREE FOR ORDER BY");
    if !served {
        check.problem = Some(format!("no index serves the cursor {cursor}: each pass would read the whole table"));
        let name = format!("hw_{table}_{cursor}");
        let mut columns = vec![quote_sqlite(&cursor)];
        columns.extend(schema.key.iter().map(|&i| found.exprs[i].clone()).filter(|c| c != "_rowid_"));
        check.fix = Some((
            format!("CREATE INDEX {} ON {} ({})", quote_sqlite(&name), quote_sqlite(&table), columns.join(", ")),
            format!("DROP INDEX {}", quote_sqlite(&name)),
        ));
    }
    Ok(check)
}

/// SQLite's plan for `sql`, its steps joined by `; `.
fn plan(conn: &Connection, sql: &str) -> rusqlite::Result<String> {
    let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let nulls = vec![rusqlite::types::Value::Null; s.parameter_count()];
    let steps = s.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?;
    let steps = steps.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(steps.join("; "))
}

/// Runs the `CREATE INDEX` statements on the file, reporting each.
pub fn apply(
    config: &SqliteSourceConfig,
    statements: &[String],
    mut report: impl FnMut(&str, Result<f64, String>),
) -> usize {
    let conn = match Connection::open(&config.path) {
        Ok(c) => c,
        Err(e) => {
            statements.iter().for_each(|s| report(s, Err(e.to_string())));
            return statements.len();
        }
    };
    let mut failed = 0;
    for s in statements {
        let started = std::time::Instant::now();
        match conn.execute_batch(s) {
            Ok(()) => report(s, Ok(started.elapsed().as_secs_f64())),
            Err(e) => {
                failed += 1;
                report(s, Err(e.to_string()));
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_without_an_index_fails_with_the_index_that_fixes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, updated_at TEXT); CREATE TABLE logs (v TEXT);")
            .expect("schema");
        let text = format!(
            "type = \"sqlite\"\npath = {:?}\ntables = [{{ name = \"users\", cursor = \"updated_at\" }}, {{ name = \"logs\" }}]",
            path.display().to_string()
        );
        let config: SqliteSourceConfig = toml::from_str(&text).expect("config");
        let checks = check(&config).expect("check");
        assert!(!checks[0].ok(), "{checks:?}");
        let (create, rollback) = checks[0].fix.clone().expect("fix");
        assert_eq!(create, "CREATE INDEX \"hw_users_updated_at\" ON \"users\" (\"updated_at\", \"id\")");
        assert!(checks[1].ok(), "a table copied whole needs no index: {checks:?}");
        assert_eq!(apply(&config, &[create], |_, r| assert!(r.is_ok(), "{r:?}")), 0);
        let again = check(&config).expect("check");
        assert!(again[0].ok(), "{again:?}");
        assert!(again[0].plan.contains("hw_users_updated_at"), "{again:?}");
        conn.execute_batch(&rollback).expect("rollback");
        assert!(!check(&config).expect("check")[0].ok());
    }
}
