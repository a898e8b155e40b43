//! `highwater run` over a Kafka bus: the extract role (source -> Kafka, checkpoints of its own
//! in `state_dir/<pipeline>.extract.checkpoints.json`, advanced once the brokers acknowledged a
//! batch), the load role (Kafka -> sink, offsets committed once the sink made a batch durable),
//! or both in one process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, SinkConfig};
use highwater_kafka::config::KafkaBusConfig;
use highwater_kafka::{KafkaPublisher, KafkaSubscriber};
use highwater_pipeline::checkpoint::{CheckpointStore, FileCheckpointStore};
use highwater_pipeline::cursor::Position;
use highwater_pipeline::runner::{self, RunOptions, RunReport};
use highwater_pipeline::source::BatchShape;
use highwater_sinks::mysql::MysqlSink;
use highwater_sinks::parquet::ParquetSink;
use tokio_util::sync::CancellationToken;

use crate::build::{Role, configured_tables, connect_source};

pub async fn run(
    config: &Config,
    bus: &KafkaBusConfig,
    role: Role,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    match role {
        Role::Extract => extract(config, bus, options, shutdown).await,
        Role::Load => load(config, bus, options, shutdown, None).await,
        Role::All => {
            // A `--once` loader waits for the extractor beside it before a quiet bus ends it.
            let extracting = Arc::new(AtomicBool::new(true));
            let (extract_options, extract_shutdown) = (options.clone(), shutdown.clone());
            let extract_then_say_so = async {
                let extracted = extract(config, bus, extract_options, extract_shutdown).await;
                extracting.store(false, Ordering::Release);
                extracted
            };
            let (extracted, loaded) =
                tokio::join!(extract_then_say_so, load(config, bus, options, shutdown, Some(extracting.clone())));
            extracted?;
            loaded
        }
    }
}

async fn extract(
    config: &Config,
    bus: &KafkaBusConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    let source_config = &config.source;
    // Behind Kafka the loader cannot merge a table's batches by date (see `merging_dates`).
    let shape = match &config.sink {
        SinkConfig::Parquet(_) => ParquetSink::batch_shape(false),
        SinkConfig::Mysql(_) => BatchShape::Any,
    };
    let source = connect_source(source_config, shape, &options).await?;
    let name = &config.pipeline.name;
    let store = FileCheckpointStore::open(&config.pipeline.state_dir, &format!("{name}.extract"))?;
    let publisher = KafkaPublisher::connect(bus, name, highwater_pipeline::source::Source::tables(&source)).await?;
    // A topic that had to be created although this extractor already published to it was
    // deleted, with whatever the loaders had not read yet: going on would lose those rows.
    for table in publisher.created() {
        if store.load(table).await?.is_some_and(|c| c.position != Position::Start) {
            anyhow::bail!(
                "topic {} of table {table} did not exist, yet rows of the table were published to it before \
                 (checkpoint in {}): it was deleted, with any rows the loaders had not read. To publish the table \
                 again from the start, remove its entry from that file (or the file); the sinks accept rows twice",
                publisher.topic_of(table).unwrap_or("?"),
                store.path().display()
            );
        }
    }
    tracing::info!(pipeline = %name, brokers = %bus.brokers, checkpoints = %store.path().display(), "extracting to Kafka");
    Ok(runner::run_extract(source, publisher, store, options, shutdown).await?)
}

async fn load(
    config: &Config,
    bus: &KafkaBusConfig,
    options: RunOptions,
    shutdown: CancellationToken,
    extracting: Option<Arc<AtomicBool>>,
) -> anyhow::Result<RunReport> {
    let tables = configured_tables(config);
    let mut subscriber = KafkaSubscriber::connect(bus, &tables, options.once)?;
    let both_roles = extracting.is_some();
    if let Some(extracting) = extracting {
        subscriber = subscriber.while_extracting(extracting);
    }
    let name = &config.pipeline.name;
    tracing::info!(pipeline = %name, brokers = %bus.brokers, group = %bus.group, "loading from Kafka");
    Ok(match &config.sink {
        SinkConfig::Parquet(p) => {
            let store = FileCheckpointStore::open(&config.pipeline.state_dir, name)?;
            runner::run_load(subscriber, ParquetSink::new(p), store, &tables, options, shutdown).await?
        }
        SinkConfig::Mysql(m) => {
            let mut sink = MysqlSink::connect(m, name, Some(&options.metrics)).await?;
            sink.refuse_nonempty_targets(m, config.source.is_a_move());
            // A run of both roles holds the sink's lock, as over the channel bus; loaders of a
            // Kafka group share the sink through the group.
            if both_roles {
                sink.lock(m.url.database().unwrap_or_default(), name).await?;
            }
            let store = sink.checkpoint_store();
            runner::run_load(subscriber, sink, store, &tables, options, shutdown).await?
        }
    })
}
