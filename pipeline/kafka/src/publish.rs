//! [`KafkaPublisher`]: batches into topics, acknowledged before `publish` returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{ipc, json, route};
use crate::config::{Encoding, KafkaBusConfig};
use highwater_pipeline::batch::ChangeBatch;
use highwater_pipeline::bus::{BusError, Message, Publish};
use highwater_pipeline::schema::{TableId, TableSchema};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::{broker_error, topic};

/// How long a message may wait in the producer's queue before `publish` fails: the broker is
/// gone for that long. The producer retries within it (idempotently, so without duplicates).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on metadata and admin requests: a broker that does not answer within it fails the
/// start with a clear error (a scheduler or systemd starts it again).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The extracting side of the Kafka bus.
pub struct KafkaPublisher {
    producer: FutureProducer,
    encoding: Encoding,
    max_message_bytes: usize,
    pipeline: String,
    /// Each table's topic and partition count.
    topics: HashMap<TableId, (String, u32)>,
    /// Tables whose topic did not exist and was created by `connect`.
    created: Vec<TableId>,
}

/// One message to send.
struct Outgoing {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

impl KafkaPublisher {
    /// Connects, creates the topics of `tables` that do not exist, and learns their
    /// partitions (an existing topic keeps its own count).
    pub async fn connect(
        config: &KafkaBusConfig,
        pipeline: &str,
        tables: &[Arc<TableSchema>],
    ) -> Result<KafkaPublisher, BusError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.max.bytes", (config.max_message_bytes + 64 * 1024).to_string())
            .set("delivery.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "5");
        let producer: FutureProducer =
            client.create().map_err(|e| broker_error(format!("a producer for {} (bus.brokers)", config.brokers), e))?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .create()
            .map_err(|e| broker_error(format!("an admin client for {} (bus.brokers)", config.brokers), e))?;

        let names: Vec<String> = tables.iter().map(|t| topic::name(&config.topic_prefix, &t.id)).collect();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, config.partitions, TopicReplication::Fixed(config.replication_factor)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
        let created = admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| broker_error(format!("creating topics on {} (bus.brokers)", config.brokers), e))?;
        let mut new_topics = Vec::new();
        for result in created {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = config.partitions, "created topic");
                    new_topics.push(name);
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Message(format!(
                        "the broker refused to create topic {name}: {code} (check bus.partitions and \
                         bus.replication_factor against the cluster)"
                    )));
                }
            }
        }
        let created =
            tables.iter().zip(&names).filter(|(_, n)| new_topics.contains(n)).map(|(t, _)| t.id.clone()).collect();
        let mut topics = HashMap::new();
        for (t, name) in tables.iter().zip(names) {
            let partitions = partition_count(&producer, &name).await?;
            topics.insert(t.id.clone(), (name, partitions));
        }
        Ok(KafkaPublisher {
            producer,
            encoding: config.encoding,
            max_message_bytes: config.max_message_bytes,
            pipeline: pipeline.to_owned(),
            topics,
            created,
        })
    }

    /// Tables whose topic did not exist when this publisher connected (and was created).
    pub fn created(&self) -> &[TableId] {
        &self.created
    }

    /// The topic of a table.
    pub fn topic_of(&self, table: &TableId) -> Option<&str> {
        self.topics.get(table).map(|(name, _)| name.as_str())
    }

    fn topic(&self, table: &TableId) -> Result<&(String, u32), BusError> {
        self.topics.get(table).ok_or_else(|| BusError::Message(format!("{table}: no topic was set up for it")))
    }

    /// The messages of one batch: per partition, the JSON rows or the Arrow pieces.
    fn messages(&self, batch: &ChangeBatch) -> Result<Vec<Outgoing>, BusError> {
        let (topic_name, partitions) = self.topic(&batch.table.id)?.clone();
        let piece_id = format!("{}-{}", batch.after.file_token(), batch.upto.file_token());
        let after = serde_json::to_string(&batch.after).unwrap_or_default();
        let upto = serde_json::to_string(&batch.upto).unwrap_or_default();
        let schema = batch.table.to_json();
        let ts_ms = now_ms();
        let mut out = Vec::new();
        for (partition, piece) in route::split(batch, partitions) {
            // The first message of a piece carries what rebuilding it needs.
            let first = |headers: OwnedHeaders| {
                headers
                    .insert(Header { key: topic::SCHEMA, value: Some(&schema) })
                    .insert(Header { key: topic::AFTER, value: Some(&after) })
                    .insert(Header { key: topic::UPTO, value: Some(&upto) })
            };
            let common = |count: usize, index: usize| {
                OwnedHeaders::new()
                    .insert(Header { key: topic::KIND, value: Some("batch") })
                    .insert(Header { key: topic::PIECE, value: Some(&piece_id) })
                    .insert(Header { key: topic::PIECE_MESSAGES, value: Some(&count.to_string()) })
                    .insert(Header { key: topic::PIECE_INDEX, value: Some(&index.to_string()) })
            };
            match self.encoding {
                Encoding::Json => {
                    let rows = json::encode(&piece, &self.pipeline, ts_ms);
                    let n = rows.len();
                    for (i, row) in rows.into_iter().enumerate() {
                        if row.value.len() > self.max_message_bytes {
                            return Err(too_large(&batch.table.id, row.value.len(), self.max_message_bytes));
                        }
                        let headers = common(n, 0);
                        let headers = if i == 0 { first(headers) } else { headers };
                        out.push(Outgoing {
                            topic: topic_name.clone(),
                            partition: partition as i32,
                            key: Some(row.key),
                            value: Some(row.value),
                            headers,
                        });
                    }
                }
                Encoding::Arrow => {
                    let chunks = arrow_chunks(&piece, self.max_message_bytes)?;
                    for (index, (bytes, ops)) in chunks.into_iter().enumerate() {
                        let headers = first(common(1, index)).insert(Header { key: topic::OPS, value: Some(&ops) });
                        out.push(Outgoing {
                            topic: topic_name.clone(),
                            partition: partition as i32,
                            key: None,
                            value: Some(bytes),
                            headers,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    async fn send_all(&self, mut messages: Vec<Outgoing>) -> Result<(), BusError> {
        // The records take the headers; the messages stay for the error texts.
        let headers: Vec<OwnedHeaders> = messages.iter_mut().map(|m| std::mem::take(&mut m.headers)).collect();
        let sends = messages.iter().zip(headers).map(|(m, headers)| {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&m.topic).partition(m.partition).headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &m.value {
                record = record.payload(v.as_slice());
            }
            self.producer.send(record, DELIVERY_TIMEOUT)
        });
        for (result, m) in futures_util::future::join_all(sends).await.into_iter().zip(&messages) {
            if let Err((e, _)) = result {
                return Err(match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => BusError::Message(format!(
                        "topic {} refused a message of {} bytes as too large: raise the topic's max.message.bytes \
                         (and the broker's) or lower bus.max_message_bytes",
                        m.topic,
                        m.value.as_ref().map_or(0, Vec::len)
                    )),
                    e => broker_error(format!("producing to {} partition {}", m.topic, m.partition), e),
                });
            }
        }
        Ok(())
    }
}

impl Publish for KafkaPublisher {
    async fn publish(&mut self, message: Message) -> Result<(), BusError> {
        let messages = match message {
            Message::Batch(batch) => self.messages(&batch)?,
            Message::CaughtUp { table, bound } => {
                // A heartbeat on every partition, behind the batches there.
                let (topic_name, partitions) = self.topic(&table)?.clone();
                let bound = bound.to_string();
                (0..partitions as i32)
                    .map(|partition| Outgoing {
                        topic: topic_name.clone(),
                        partition,
                        key: None,
                        value: None,
                        headers: OwnedHeaders::new()
                            .insert(Header { key: topic::KIND, value: Some(topic::KIND_CAUGHT_UP) })
                            .insert(Header { key: topic::BOUND, value: Some(&bound) }),
                    })
                    .collect()
            }
        };
        self.send_all(messages).await
    }

    fn durable(&self) -> bool {
        true
    }
}

/// A piece as Arrow IPC messages of at most `max` bytes each, halving the rows until they fit.
fn arrow_chunks(piece: &ChangeBatch, max: usize) -> Result<Vec<(Vec<u8>, String)>, BusError> {
    let mut out = Vec::new();
    let mut pending = vec![(0usize, piece.num_rows())];
    while let Some((offset, len)) = pending.pop() {
        let rows = piece.rows.slice(offset, len);
        let bytes = ipc::encode(&rows).map_err(|e| BusError::Message(format!("{}: {e}", piece.table.id)))?;
        if bytes.len() <= max {
            out.push((offset, bytes, ipc::ops_text(&piece.ops[offset..offset + len])));
        } else if len == 1 {
            return Err(too_large(&piece.table.id, bytes.len(), max));
        } else {
            // Second half first: the stack pops the first half next, keeping row order.
            pending.push((offset + len / 2, len - len / 2));
            pending.push((offset, len / 2));
        }
    }
    out.sort_by_key(|(offset, _, _)| *offset);
    Ok(out.into_iter().map(|(_, bytes, ops)| (bytes, ops)).collect())
}

fn too_large(table: &TableId, bytes: usize, max: usize) -> BusError {
    BusError::Message(format!(
        "{table}: a row takes {bytes} bytes, more than bus.max_message_bytes ({max}): raise it, with the topic's \
         max.message.bytes"
    ))
}

/// The partitions of `topic`, waiting for a just-created topic to show in the metadata.
async fn partition_count(producer: &FutureProducer, topic_name: &str) -> Result<u32, BusError> {
    for _ in 0..50 {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic_name), ADMIN_TIMEOUT)
            .map_err(|e| broker_error(format!("the metadata of topic {topic_name}"), e))?;
        let n = metadata.topics().iter().find(|t| t.name() == topic_name).map_or(0, |t| t.partitions().len());
        if n > 0 {
            return Ok(n as u32);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BusError::Message(format!("topic {topic_name} has no partitions: was it deleted? (it is created on start)")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use highwater_pipeline::batch::{BatchStats, Op};
    use highwater_pipeline::cursor::Position;
    use highwater_pipeline::schema::{ColumnSchema, TableSchema};

    use super::*;

    fn piece(rows: usize, text_bytes: usize) -> ChangeBatch {
        let column = ColumnSchema {
            name: "s".into(),
            source_type: "text".into(),
            charset: None,
            collation: None,
            source_nullable: false,
            data_type: arrow_schema::DataType::Utf8,
            nullable: false,
            default: None,
            default_computed: false,
        };
        let table =
            Arc::new(TableSchema::new(TableId { database: "d".into(), table: "t".into() }, vec![column], vec![0], 0));
        let values: Vec<String> = (0..rows).map(|i| format!("{i:0>width$}", width = text_bytes)).collect();
        let array: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(values));
        ChangeBatch {
            rows: arrow_array::RecordBatch::try_new(table.arrow.clone(), vec![array]).expect("batch"),
            table,
            ops: (0..rows).map(|i| if i % 3 == 0 { Op::Delete } else { Op::Upsert }).collect(),
            after: Position::Start,
            upto: Position::Start,
            stats: BatchStats::default(),
            piece: None,
        }
    }

    #[test]
    fn large_pieces_are_split_in_order_until_each_fits() {
        let p = piece(1000, 100);
        let chunks = arrow_chunks(&p, 20_000).expect("splits");
        assert!(chunks.len() > 4, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|(bytes, _)| bytes.len() <= 20_000));
        let ops: String = chunks.iter().map(|(_, ops)| ops.as_str()).collect();
        assert_eq!(ops, ipc::ops_text(&p.ops), "every row once, in order");
        let rows: usize = chunks.iter().map(|(_, ops)| ops.len()).sum();
        assert_eq!(rows, 1000);
    }

    #[test]
    fn a_row_larger_than_the_limit_is_an_error_naming_the_table_and_the_key() {
        let err = arrow_chunks(&piece(2, 5000), 2048).expect_err("one row is 5 kB").to_string();
        assert!(err.starts_with("d.t: a row takes") && err.contains("bus.max_message_bytes (2048)"), "{err}");
    }
}
