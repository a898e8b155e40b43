//! highwater-kafka: the bus over Kafka, so that extraction and loading run in different
//! processes (`--role extract`, `--role load`) and several sink groups read the same changes.
//!
//! - [`topic`]: topic names and the headers that carry what a message needs beside its value.
//! - [`publish`]: [`KafkaPublisher`] creates the topics, splits each batch by partition (a
//!   stable hash of the primary key), sends it with an idempotent `acks=all` producer and
//!   returns only when every message is acknowledged, so the extractor may checkpoint.
//! - [`subscribe`]: [`KafkaSubscriber`] reads in a consumer group with auto-commit off,
//!   rebuilds each piece of a batch, and commits offsets only for what the sink made durable.
//! - [`once`]: when a `--once` loader may stop: its group has loaded everything its topics
//!   held, partition by partition, as the broker confirms.

pub mod codec;
pub mod config;
pub mod once;
pub mod publish;
pub mod subscribe;
pub mod topic;

pub use publish::KafkaPublisher;
pub use subscribe::KafkaSubscriber;

use highwater_pipeline::bus::BusError;
use rdkafka::error::KafkaError;

/// A broker error as a bus error; `what` says what was being done.
fn broker_error(what: impl Into<String>, e: KafkaError) -> BusError {
    // Errors that name a wrong setting or a refused request do not pass by waiting.
    let retryable = !matches!(e, KafkaError::ClientConfig(..) | KafkaError::Subscription(_));
    BusError::Broker { what: what.into(), retryable, source: Box::new(e) }
}
