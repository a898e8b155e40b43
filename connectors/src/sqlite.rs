//! The SQLite source (`type = "sqlite"`): a database file read table by table, with the same
//! positions, checkpoints and guarantees as the MySQL source.

pub mod backup;
pub mod check;
pub mod clock;
pub mod config;
mod decode;
mod discover;
mod query;
mod source;
pub mod types;

pub use source::SqliteSource;

use highwater_pipeline::schema::TableId;
use highwater_pipeline::source::SourceError;

/// The tables a config reads, as the source names them: those it lists, or every table the file
/// holds now (none when the file cannot be read: the run says why).
pub fn table_ids(config: &config::SqliteSourceConfig) -> Vec<TableId> {
    let database = source::database_name(&config.path);
    let names: Vec<String> = match &config.tables {
        Some(tables) => tables.iter().map(|t| t.name.clone()).collect(),
        None => rusqlite::Connection::open_with_flags(&config.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|conn| discover::all_tables(&conn).ok())
            .unwrap_or_default(),
    };
    names.into_iter().map(|table| TableId { database: database.clone(), table }).collect()
}

/// `name` quoted as a SQLite identifier.
pub fn quote_sqlite(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A failed statement, named by what it read. A file locked by a writer beyond the busy
/// timeout can pass; anything else (a corrupt page, a file that is not a database) cannot.
fn query_error(what: String, e: rusqlite::Error) -> SourceError {
    let retryable =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    let what = if retryable {
        format!("{what} (the file stayed locked by a writer beyond source.busy_timeout_secs)")
    } else {
        what
    };
    SourceError::Query { what, retryable, source: Box::new(e) }
}
