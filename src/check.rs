//! `highwater check` and `highwater indexes`: print what the source checks found.

use highwater_connectors::mysql::check::{self, TableCheck};
use highwater_connectors::mysql::config::MysqlSourceConfig;
use highwater_connectors::sqlite;
use serde_json::json;

use crate::config::SourceConfig;

/// `check` for whichever source the config has.
pub async fn run_check(config: &SourceConfig, as_json: bool) -> anyhow::Result<bool> {
    match config {
        SourceConfig::Mysql(c) => run_check_mysql(c, as_json).await,
        SourceConfig::Sqlite(c) => run_check_sqlite(c, as_json),
    }
}

/// `indexes` for whichever source the config has.
pub async fn run_indexes(config: &SourceConfig, apply: bool) -> anyhow::Result<bool> {
    match config {
        SourceConfig::Mysql(c) => run_indexes_mysql(c, apply).await,
        SourceConfig::Sqlite(c) => run_indexes_sqlite(c, apply),
    }
}

/// `check` of a SQLite file: each cursor's index, as `EXPLAIN QUERY PLAN` shows it.
fn run_check_sqlite(config: &sqlite::config::SqliteSourceConfig, as_json: bool) -> anyhow::Result<bool> {
    let checks = sqlite::check::check(config)?;
    let ok = checks.iter().all(sqlite::check::TableCheck::ok);
    if as_json {
        let tables: Vec<_> = checks
            .iter()
            .map(|c| {
                json!({
                    "table": c.table, "ok": c.ok(), "cursor": c.cursor, "explain": c.plan, "problem": c.problem,
                    "fix": c.fix.as_ref().map(|(create, rollback)| json!({ "create": create, "rollback": rollback })),
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&json!({ "ok": ok, "tables": tables }))?);
        return Ok(ok);
    }
    for c in &checks {
        let status = if c.ok() { "OK  " } else { "FAIL" };
        match &c.cursor {
            Some(cursor) => out!("{status} {}  cursor {cursor}, EXPLAIN QUERY PLAN: {}", c.table, c.plan),
            None => out!("{status} {}  no cursor: copied whole on each run", c.table),
        }
        if let Some(p) = &c.problem {
            out!("     problem: {p}");
        }
        if let Some((create, rollback)) = &c.fix {
            out!("     fix:      {create};");
            out!("     rollback: {rollback};");
        }
    }
    Ok(ok)
}

/// `indexes` of a SQLite file: the missing cursor indexes, their rollback, and with `apply`
/// their creation.
fn run_indexes_sqlite(config: &sqlite::config::SqliteSourceConfig, apply: bool) -> anyhow::Result<bool> {
    let fixes: Vec<(String, String)> = sqlite::check::check(config)?.into_iter().filter_map(|c| c.fix).collect();
    if fixes.is_empty() {
        out!("-- every cursor column has the index it needs: nothing to do");
        return Ok(true);
    }
    out!("-- create the missing cursor indexes:");
    fixes.iter().for_each(|(create, _)| out!("{create};"));
    out!("\n-- rollback:");
    fixes.iter().for_each(|(_, rollback)| out!("{rollback};"));
    if !apply {
        return Ok(true);
    }
    out!();
    let statements: Vec<String> = fixes.into_iter().map(|(create, _)| create).collect();
    let failed = sqlite::check::apply(config, &statements, |s, result| match result {
        Ok(secs) => out!("-- applied in {secs:.2} s: {s}"),
        Err(e) => out!("-- FAILED: {s}: {e}"),
    });
    Ok(failed == 0)
}

/// Prints one line per table (and its notes), or JSON; returns whether every table holds.
async fn run_check_mysql(config: &MysqlSourceConfig, as_json: bool) -> anyhow::Result<bool> {
    let checks = check::check(config).await?;
    if as_json {
        let tables: Vec<_> = checks.iter().map(to_json).collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({ "ok": checks.iter().all(TableCheck::ok), "tables": tables }))?
        );
    } else {
        for c in &checks {
            let status = if c.ok() { "OK  " } else { "FAIL" };
            let plan = c.plan.as_ref().map_or(String::new(), |p| {
                format!(", EXPLAIN: {} on {}{}", p.access, p.key.as_deref().unwrap_or("no index"), extra(&p.extra))
            });
            let index = c
                .index
                .as_ref()
                .map_or("no cursor index".to_owned(), |(n, cols)| format!("index {n} ({})", cols.join(", ")));
            let zone = if c.zone.is_empty() { String::new() } else { format!(" (values in {})", c.zone) };
            out!("{status} {}  cursor {} {}{zone}, {index}{plan}", c.table, c.cursor, c.cursor_type);
            for p in &c.problems {
                out!("     problem: {p}");
            }
            for n in &c.notes {
                out!("     note: {n}");
            }
            if let Some(fix) = &c.fix {
                out!("     fix:      {};", fix.create);
                out!("     rollback: {};", fix.rollback);
            }
        }
    }
    Ok(checks.iter().all(TableCheck::ok))
}

/// Prints the missing indexes and their rollback, and with `apply` creates them one by one;
/// a table no index can help is named with its problem. Returns whether all is well.
async fn run_indexes_mysql(config: &MysqlSourceConfig, apply: bool) -> anyhow::Result<bool> {
    let checks = check::check(config).await?;
    let fixes: Vec<_> = checks.iter().filter_map(|c| c.fix.clone()).collect();
    let unfixable: Vec<&TableCheck> = checks.iter().filter(|c| c.fix.is_none() && c.plan.is_none()).collect();
    for c in &unfixable {
        for p in &c.problems {
            out!("-- {}: no index to suggest: {p}", c.table);
        }
    }
    if fixes.is_empty() {
        out!("-- every cursor column has the index it needs: nothing to do");
        return Ok(unfixable.is_empty());
    }
    out!("-- create the missing cursor indexes:");
    for f in &fixes {
        out!("{};", f.create);
    }
    out!("\n-- rollback:");
    for f in &fixes {
        out!("{};", f.rollback);
    }
    if !apply {
        return Ok(unfixable.is_empty());
    }
    out!();
    let statements: Vec<String> = fixes.into_iter().map(|f| f.create).collect();
    let failed = check::apply(config, &statements, |s, result| match result {
        Ok(secs) => out!("-- applied in {secs:.2} s: {s}"),
        Err(e) => out!("-- FAILED: {s}: {e}"),
    })
    .await?;
    Ok(failed == 0 && unfixable.is_empty())
}

fn extra(extra: &str) -> String {
    if extra.is_empty() { String::new() } else { format!(" ({extra})") }
}

fn to_json(c: &TableCheck) -> serde_json::Value {
    json!({
        "table": c.table,
        "ok": c.ok(),
        "cursor": { "column": c.cursor, "type": c.cursor_type, "nullable": c.cursor_nullable, "time_zone": c.zone },
        "index": c.index.as_ref().map(|(n, cols)| json!({ "name": n, "columns": cols })),
        "explain": c.plan.as_ref().map(|p| json!({ "type": p.access, "key": p.key, "rows": p.rows, "extra": p.extra })),
        "problems": c.problems,
        "notes": c.notes,
        "fix": c.fix.as_ref().map(|f| json!({ "create": f.create, "rollback": f.rollback })),
    })
}
