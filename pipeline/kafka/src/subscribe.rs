//! [`KafkaSubscriber`]: a consumer-group member that rebuilds batches and commits offsets only
//! for what the sink made durable.
//!
//! Offsets are committed at piece boundaries only, so a loader that takes over a partition
//! (after a rebalance or a crash) always starts at the first message of a piece and rebuilds
//! exactly the pieces the previous owner would have: a replayed piece is written again under
//! the same name (Parquet) or upserted again behind the version guard (MySQL).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::codec::{ipc, json};
use crate::config::{Encoding, KafkaBusConfig};
use arrow_array::RecordBatch;
use highwater_pipeline::batch::{BatchStats, ChangeBatch, Op};
use highwater_pipeline::bus::{BusError, Message, Subscribe};
use highwater_pipeline::cursor::{DateTime, Position};
use highwater_pipeline::schema::{TableId, TableSchema};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

use crate::once::{self, PartitionFacts, Stuck};
use crate::{broker_error, topic};

/// With `--once`, the loader stops after this long without a message once its group has
/// loaded every message of its topics (see [`crate::once`]).
pub const ONCE_IDLE: Duration = Duration::from_secs(3);
/// With `--once`, how long to wait for the group to assign partitions at all.
const ONCE_ASSIGNMENT_WAIT: Duration = Duration::from_secs(60);

/// The loading side of the Kafka bus. Its broker calls that wait for an answer run in
/// [`tokio::task::block_in_place`], so it needs the multi-thread runtime.
pub struct KafkaSubscriber {
    consumer: StreamConsumer,
    encoding: Encoding,
    tables: HashMap<String, TableId>,
    /// JSON pieces being rebuilt, by (topic, partition).
    partial: HashMap<(String, i32), Partial>,
    /// `--once`: stop when idle.
    once: bool,
    /// `--role all`: set while this process's extractor still publishes (see
    /// [`KafkaSubscriber::while_extracting`]), and when it was seen done.
    extracting: Option<Arc<AtomicBool>>,
    extracted_at: Option<Instant>,
    started: Instant,
    warned_missing: bool,
    brokers: String,
    group: String,
    /// `--once`: how long it has been unable to confirm its topics read.
    stuck: Stuck,
    /// `--once`: how long it may be before it fails (`bus.once_stuck_secs`).
    stuck_after: Duration,
    /// The wait before the next try while the brokers are unreachable.
    backoff: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A piece whose messages are still arriving.
struct Partial {
    id: String,
    expected: usize,
    next_offset: i64,
    table: Arc<TableSchema>,
    after: Position,
    upto: Position,
    values: Vec<Vec<u8>>,
}

/// The position after a message: what to commit once it is durable.
pub type Ack = (String, i32, i64);

impl KafkaSubscriber {
    /// Joins the group `bus.group` and subscribes to the topics of `tables`.
    pub fn connect(config: &KafkaBusConfig, tables: &[TableId], once: bool) -> Result<KafkaSubscriber, BusError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", (config.session_timeout_secs * 1000).to_string())
            .set("heartbeat.interval.ms", (config.session_timeout_secs * 1000 / 4).max(100).to_string())
            // Also the rebalance timeout: how long a rebalance waits for a member that does not
            // rejoin (a killed loader) before going on without it.
            .set("max.poll.interval.ms", (config.session_timeout_secs * 3000).max(30_000).to_string())
            .set("fetch.max.bytes", (config.max_message_bytes * 4).max(52_428_800).to_string())
            .create()
            .map_err(|e| broker_error(format!("a consumer for {} (bus.brokers)", config.brokers), e))?;
        let topics: HashMap<String, TableId> =
            tables.iter().map(|t| (topic::name(&config.topic_prefix, t), t.clone())).collect();
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| broker_error(format!("subscribing to {}", names.join(", ")), e))?;
        Ok(KafkaSubscriber {
            consumer,
            encoding: config.encoding,
            tables: topics,
            partial: HashMap::new(),
            once,
            extracting: None,
            extracted_at: None,
            started: Instant::now(),
            warned_missing: false,
            brokers: config.brokers.clone(),
            group: config.group.clone(),
            stuck: Stuck::default(),
            stuck_after: Duration::from_secs(config.once_stuck_secs),
            backoff: FIRST_BACKOFF,
        })
    }

    /// A `--once` loader in the process of its extractor (`--role all`): a quiet bus does not
    /// end it while `extracting` is set. The extractor may wait long before it publishes (for
    /// a writer's transaction, up to `open_transaction_wait_secs`), and a loader that took that
    /// for the end stopped with what the bus held so far and exited 0 (the rest waited, read
    /// by no one, for the next run). Once the extractor is done, the loader stops after
    /// [`ONCE_IDLE`] without a message, counted from then.
    pub fn while_extracting(mut self, extracting: Arc<AtomicBool>) -> Self {
        self.extracting = Some(extracting);
        self
    }

    /// Whether a `--once` loader may stop for a quiet bus: no extractor of this process is
    /// still publishing, and none finished less than [`ONCE_IDLE`] ago (its last messages may
    /// still be on their way).
    fn may_stop(&mut self) -> bool {
        let Some(extracting) = &self.extracting else { return true };
        if extracting.load(Ordering::Acquire) {
            return false;
        }
        self.extracted_at.get_or_insert_with(Instant::now).elapsed() >= ONCE_IDLE
    }

    /// Whether this `--once` loader's group has loaded every message its topics held a moment
    /// ago (see [`crate::once`]); an error once it could not confirm that for
    /// `bus.once_stuck_secs` with nothing moving. Asked only when the bus was quiet.
    fn read_to_end(&mut self) -> Result<bool, BusError> {
        // The broker's answers can take seconds (each topic's metadata, then three requests, up
        // to 5 s each): outside the runtime's workers, so that its other tasks (`/metrics`) are
        // not held up behind them, on a one-core machine (one worker) too.
        let facts = tokio::task::block_in_place(|| self.partition_facts());
        let Some((first, verdict)) = once::first_unread(&facts) else { return Ok(true) };
        let waited = self.stuck.unconfirmed(&facts, Instant::now());
        tracing::info!(topic = %first.topic, partition = first.partition, ?verdict, waited_secs = waited.as_secs(),
            "--once: not every partition is read to its end yet");
        if waited >= self.stuck_after {
            return Err(BusError::Message(once::stuck_error(&self.group, first, &verdict, waited, self.stuck_after)));
        }
        Ok(false)
    }

    /// What the broker says of every partition of this loader's topics, assigned to it or not.
    /// A topic the broker does not know has none; one whose metadata did not come is one fact
    /// with no partition (-1) and its end unknown.
    fn partition_facts(&self) -> Vec<PartitionFacts> {
        const ASK: Duration = Duration::from_secs(5);
        let mut facts = Vec::new();
        let mut all = TopicPartitionList::new();
        let mut topics: Vec<&String> = self.tables.keys().collect();
        topics.sort();
        for topic in topics {
            match self.partitions_of(topic, ASK) {
                Ok(partitions) => {
                    for partition in partitions {
                        all.add_partition(topic, partition);
                    }
                }
                Err(e) => facts.push(PartitionFacts {
                    topic: topic.clone(),
                    partition: -1,
                    watermarks: Err(format!("the metadata of topic {topic}: {e}")),
                    mine: false,
                    position: None,
                    committed: None,
                }),
            }
        }
        // Every partition's start and end in two requests, not two per partition: each waits
        // behind the consumer's fetch on the broker's connection (up to `fetch.wait.max.ms`,
        // 500 ms). Per partition, a Matomo preset run over 15 partitions took 18 s, now 11.7 s.
        let starts = self.list_offsets(&all, EARLIEST, ASK);
        let ends = self.list_offsets(&all, LATEST, ASK);
        let committed = self.consumer.committed_offsets(all.clone(), ASK).ok();
        let assigned = self.consumer.assignment().unwrap_or_default();
        let positions = self.consumer.position().unwrap_or_default();
        for e in all.elements() {
            let (topic, partition) = (e.topic(), e.partition());
            facts.push(PartitionFacts {
                topic: topic.to_owned(),
                partition,
                watermarks: listed(&starts, topic, partition).and_then(|s| Ok((s, listed(&ends, topic, partition)?))),
                mine: assigned.find_partition(topic, partition).is_some(),
                position: offset_in(&positions, topic, partition),
                committed: committed.as_ref().and_then(|c| offset_in(c, topic, partition)),
            });
        }
        facts
    }

    /// The partitions of `topic` in the broker's metadata: none if it does not know the topic.
    fn partitions_of(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>, String> {
        let metadata = self.consumer.fetch_metadata(Some(topic), timeout).map_err(|e| e.to_string())?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(Vec::new()) };
        match t.error().map(RDKafkaErrorCode::from) {
            None => Ok(t.partitions().iter().map(|p| p.id()).collect()),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(Vec::new()),
            Some(code) => Err(code.to_string()),
        }
    }

    /// The offset of `which` ([`EARLIEST`] or [`LATEST`]) in each partition of `partitions`.
    fn list_offsets(
        &self,
        partitions: &TopicPartitionList,
        which: Offset,
        timeout: Duration,
    ) -> Result<TopicPartitionList, String> {
        let mut asked = partitions.clone();
        asked.set_all_offsets(which).map_err(|e| e.to_string())?;
        self.consumer.offsets_for_times(asked, timeout).map_err(|e| e.to_string())
    }

    /// What one message adds: a finished message for the loader, or nothing yet.
    fn take(&mut self, m: &OwnedMessage) -> Result<Option<Message>, BusError> {
        let topic_name = m.topic().to_owned();
        let Some(table_id) = self.tables.get(&topic_name).cloned() else { return Ok(None) };
        let header = |key: &str| header(m, key);
        if header(topic::KIND).as_deref() == Some(topic::KIND_CAUGHT_UP) {
            let bound = header(topic::BOUND).and_then(|b| b.parse::<DateTime>().ok());
            return Ok(bound.map(|bound| Message::CaughtUp { table: table_id, bound }));
        }
        let Some(value) = m.payload() else { return Ok(None) };
        let key = (topic_name.clone(), m.partition());
        match self.encoding {
            Encoding::Arrow => {
                let Some(start) = PieceStart::read(m, &table_id)? else {
                    return Err(unreadable(&topic_name, m, "an Arrow message without its schema header"));
                };
                let rows = ipc::decode(&start.table, value).map_err(BusError::Message)?;
                let ops = ipc::parse_ops(&header(topic::OPS).unwrap_or_default(), rows.num_rows())
                    .map_err(|e| unreadable(&topic_name, m, &e))?;
                let index = header(topic::PIECE_INDEX).and_then(|i| i.parse().ok()).unwrap_or(0);
                Ok(Some(Message::Batch(batch(start.table, rows, ops, start.after, start.upto, (m.partition(), index)))))
            }
            Encoding::Json => {
                let id = header(topic::PIECE).unwrap_or_default();
                let contiguous = self.partial.get(&key).is_some_and(|p| p.id == id && p.next_offset == m.offset());
                if !contiguous {
                    match PieceStart::read(m, &table_id)? {
                        Some(start) => {
                            let expected = header(topic::PIECE_MESSAGES).and_then(|n| n.parse().ok()).unwrap_or(1);
                            self.partial.insert(
                                key.clone(),
                                Partial {
                                    id,
                                    expected,
                                    next_offset: m.offset(),
                                    table: start.table,
                                    after: start.after,
                                    upto: start.upto,
                                    values: Vec::with_capacity(expected),
                                },
                            );
                        }
                        None => {
                            // The head of this piece is gone (retention): its rows cannot be
                            // rebuilt; the pieces after it can.
                            tracing::warn!(topic = %topic_name, partition = m.partition(), offset = m.offset(),
                                "skipping a message whose piece began before the first message kept");
                            self.partial.remove(&key);
                            return Ok(None);
                        }
                    }
                }
                let Some(partial) = self.partial.get_mut(&key) else { return Ok(None) };
                partial.values.push(value.to_vec());
                partial.next_offset = m.offset() + 1;
                if partial.values.len() < partial.expected {
                    return Ok(None);
                }
                let Some(p) = self.partial.remove(&key) else { return Ok(None) };
                let values: Vec<&[u8]> = p.values.iter().map(Vec::as_slice).collect();
                let (rows, ops) = json::decode(&p.table, &values).map_err(BusError::Message)?;
                Ok(Some(Message::Batch(batch(p.table, rows, ops, p.after, p.upto, (m.partition(), 0)))))
            }
        }
    }
}

impl Subscribe for KafkaSubscriber {
    type Ack = Ack;

    async fn next(&mut self) -> Result<Option<(Message, Ack)>, BusError> {
        loop {
            // Only a `--once` run ends on its own: only it needs to know whether it has partitions.
            let wait = if !self.once {
                Duration::from_secs(3600)
            } else if self.consumer.assignment().is_ok_and(|a| a.count() > 0) {
                ONCE_IDLE
            } else {
                ONCE_ASSIGNMENT_WAIT.saturating_sub(self.started.elapsed()).max(ONCE_IDLE)
            };
            let received = match tokio::time::timeout(wait, self.consumer.recv()).await {
                // Quiet: decided below, once the consumer is no longer borrowed.
                Err(_) => None,
                Ok(Ok(m)) => Some(m.detach()),
                // A topic the extractor has not created yet: wait for it.
                Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                    if !self.warned_missing {
                        tracing::warn!("a subscribed topic does not exist yet: waiting for the extractor to create it");
                        self.warned_missing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                // The brokers are unreachable: a `--once` run fails (its scheduler retries);
                // a daemon waits, backing off, while librdkafka reconnects.
                Ok(Err(
                    e @ KafkaError::MessageConsumption(
                        RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
                    ),
                )) => {
                    if self.once {
                        return Err(broker_error(format!("consuming from {} (bus.brokers)", self.brokers), e));
                    }
                    tracing::warn!(error = %e, retry_in_secs = self.backoff.as_secs(), brokers = %self.brokers, "Kafka unreachable: retrying");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Ok(Err(e)) => return Err(broker_error(format!("consuming from {} (bus.brokers)", self.brokers), e)),
            };
            let Some(received) = received else {
                if self.once && self.may_stop() && self.read_to_end()? {
                    return Ok(None);
                }
                continue;
            };
            self.backoff = FIRST_BACKOFF;
            self.stuck.moved();
            let ack = (received.topic().to_owned(), received.partition(), received.offset() + 1);
            if let Some(message) = self.take(&received)? {
                return Ok(Some((message, ack)));
            }
        }
    }

    async fn ack(&mut self, acks: Vec<Ack>) -> Result<(), BusError> {
        let mut latest: HashMap<(String, i32), i64> = HashMap::new();
        for (t, p, o) in acks {
            let e = latest.entry((t, p)).or_insert(o);
            *e = (*e).max(o);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for ((t, p), o) in &latest {
            list.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| broker_error(format!("the offset of {t} partition {p}"), e))?;
        }
        // A synchronous commit waits for the broker's answer: off the runtime's workers.
        if let Err(e) = tokio::task::block_in_place(|| self.consumer.commit(&list, CommitMode::Sync)) {
            // After a rebalance the partition may be another loader's: it starts from the last
            // commit and writes these rows again, which the sinks accept. Nothing is lost.
            tracing::warn!(error = %e, "could not commit offsets (a rebalance?): the new owner will replay from the last commit");
        }
        Ok(())
    }

    fn local(&self) -> bool {
        false
    }
}

/// What the first message of a piece says.
struct PieceStart {
    table: Arc<TableSchema>,
    after: Position,
    upto: Position,
}

impl PieceStart {
    fn read(m: &OwnedMessage, expected: &TableId) -> Result<Option<PieceStart>, BusError> {
        let Some(schema) = header(m, topic::SCHEMA) else { return Ok(None) };
        let table = TableSchema::from_json(&schema).map_err(|e| unreadable(m.topic(), m, &e))?;
        if &table.id != expected {
            return Err(unreadable(m.topic(), m, &format!("it carries table {}, not {expected}", table.id)));
        }
        let position = |key: &str| -> Result<Position, BusError> {
            let text = header(m, key).unwrap_or_default();
            serde_json::from_str(&text).map_err(|e| unreadable(m.topic(), m, &format!("header {key}: {e}")))
        };
        Ok(Some(PieceStart { table: Arc::new(table), after: position(topic::AFTER)?, upto: position(topic::UPTO)? }))
    }
}

fn batch(
    table: Arc<TableSchema>,
    rows: RecordBatch,
    ops: Vec<Op>,
    after: Position,
    upto: Position,
    piece: (i32, u32),
) -> ChangeBatch {
    ChangeBatch { table, rows, ops, after, upto, stats: BatchStats::default(), piece: Some(piece) }
}

/// For `offsets_for_times`: the timestamps that ask for a partition's first offset and for
/// its end (the offset the next message will take), librdkafka's -2 and -1.
const EARLIEST: Offset = Offset::Beginning;
const LATEST: Offset = Offset::End;

/// The offset `listed` gives a partition, or why there is none.
fn listed(listed: &Result<TopicPartitionList, String>, topic: &str, partition: i32) -> Result<i64, String> {
    let list = listed.as_ref().map_err(Clone::clone)?;
    let element = list.find_partition(topic, partition).ok_or_else(|| "not in the broker's answer".to_owned())?;
    element.error().map_err(|e| e.to_string())?;
    match element.offset() {
        Offset::Offset(o) => Ok(o),
        other => Err(format!("the broker answered {other:?}")),
    }
}

/// The offset `list` holds for a partition, if a real one.
fn offset_in(list: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn unreadable(topic_name: &str, m: &OwnedMessage, why: &str) -> BusError {
    BusError::Message(format!(
        "topic {topic_name} partition {} offset {}: {why} (was it written by another producer?)",
        m.partition(),
        m.offset()
    ))
}
