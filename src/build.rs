//! What the run's parts are, built from the config: the role of this process, the tables it
//! names, the connected source. Shared by the channel run (`run`) and the Kafka roles (`kafka`).

use std::sync::Arc;

use highwater_connectors::mysql::MysqlSource;
use highwater_connectors::sqlite::{self, SqliteSource};
use highwater_pipeline::batch::ChangeBatch;
use highwater_pipeline::cursor::{DateTime, Position};
use highwater_pipeline::runner::RunOptions;
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::source::{BatchShape, PassBound, Source, SourceError};

use crate::config::{Config, SourceConfig};

/// `--role`: which side of the bus this process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Read the source and publish to the bus (Kafka).
    Extract,
    /// Consume the bus (Kafka) and write the sink.
    Load,
    /// Both, in this process.
    #[default]
    All,
}

impl Role {
    pub fn suffix(self) -> &'static str {
        match self {
            Role::Extract => ", extract",
            Role::Load => ", load",
            Role::All => "",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Extract => "extract",
            Role::Load => "load",
            Role::All => "all",
        })
    }
}

/// The tables the config names, as the source will know them (for a SQLite file that names
/// none, the tables the file holds now).
pub fn configured_tables(config: &Config) -> Vec<TableId> {
    match &config.source {
        SourceConfig::Mysql(source) => {
            let database = source.url.database().unwrap_or_default();
            source.tables.iter().map(|t| TableId { database: database.to_owned(), table: t.name.clone() }).collect()
        }
        SourceConfig::Sqlite(source) => sqlite::table_ids(source),
    }
}

/// The source the config chose.
pub enum AnySource {
    Mysql(Box<MysqlSource>),
    Sqlite(Box<SqliteSource>),
}

/// The source, its discovery problems recorded against their tables, told what `shape` of
/// batches its sink needs.
pub async fn connect_source(
    config: &SourceConfig,
    shape: BatchShape,
    options: &RunOptions,
) -> anyhow::Result<AnySource> {
    let record = |e: &SourceError| {
        if let Some(table) = e.table() {
            options.table_errors.record(table, e);
        }
    };
    let mut source = match config {
        SourceConfig::Mysql(config) => {
            AnySource::Mysql(Box::new(MysqlSource::connect(config, &options.metrics).await.inspect_err(record)?))
        }
        SourceConfig::Sqlite(config) => {
            let source = SqliteSource::open_async(config).await.inspect_err(record)?;
            let whole = source.whole_copies();
            if !whole.is_empty() {
                tracing::info!(tables = ?whole, "tables without a cursor are copied whole on each run");
            }
            AnySource::Sqlite(Box::new(source))
        }
    };
    source.shape_batches(shape);
    Ok(source)
}

/// Calls the same method on whichever source it is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnySource::Mysql($s) => $call,
            AnySource::Sqlite($s) => $call,
        }
    };
}

impl Source for AnySource {
    fn tables(&self) -> &[Arc<TableSchema>] {
        each!(self, s => s.tables())
    }

    fn shape_batches(&mut self, shape: BatchShape) {
        each!(self, s => s.shape_batches(shape))
    }

    fn estimated_rows(&self, table: usize) -> Option<u64> {
        each!(self, s => s.estimated_rows(table))
    }

    fn reread(&self, table: usize) -> Option<std::time::Duration> {
        each!(self, s => s.reread(table))
    }

    async fn server_id(&mut self) -> Result<Option<String>, SourceError> {
        each!(self, s => s.server_id().await)
    }

    async fn highest_cursor(&mut self, table: usize) -> Result<Option<DateTime>, SourceError> {
        each!(self, s => s.highest_cursor(table).await)
    }

    async fn begin_pass(&mut self, table: usize) -> Result<Option<Arc<TableSchema>>, SourceError> {
        each!(self, s => s.begin_pass(table).await)
    }

    async fn next_batch(
        &mut self,
        table: usize,
        after: &Position,
        bound: &mut PassBound,
        max_rows: usize,
    ) -> Result<Option<ChangeBatch>, SourceError> {
        each!(self, s => s.next_batch(table, after, bound, max_rows).await)
    }
}
