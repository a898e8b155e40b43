//! What the run's parts are, built from the config: the role of this process, the tables it
//! names, the connected source. Shared by the channel run (`run`) and the Kafka roles (`kafka`).

use highwater_connectors::mysql::MysqlSource;
use highwater_connectors::mysql::config::MysqlSourceConfig;
use highwater_pipeline::runner::RunOptions;
use highwater_pipeline::schema::TableId;

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

/// The tables the config names, as the source will know them.
pub fn configured_tables(config: &Config) -> Vec<TableId> {
    let SourceConfig::Mysql(source) = &config.source;
    let database = source.url.database().unwrap_or_default();
    source.tables.iter().map(|t| TableId { database: database.to_owned(), table: t.name.clone() }).collect()
}

/// The source, its discovery problems recorded against their tables. `date_files_per_batch`:
/// the sink writes a file per date and batch (Parquet behind Kafka), which a first copy in key
/// order must respect where its batches would span many dates.
pub async fn connect_source(
    config: &MysqlSourceConfig,
    date_files_per_batch: bool,
    options: &RunOptions,
) -> anyhow::Result<MysqlSource> {
    let mut source = MysqlSource::connect(config, &options.metrics).await.inspect_err(|e| {
        if let Some(table) = e.table() {
            options.table_errors.record(table, e);
        }
    })?;
    source.date_files_per_batch(date_files_per_batch);
    Ok(source)
}
