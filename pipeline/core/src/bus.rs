//! The bus between extraction and loading, and its in-process implementation.
//!
//! [`Publish`] and [`Subscribe`] are what the runner needs of a bus: publishing waits when the
//! bus is full (backpressure); a subscriber gets each message with an ack, and acks what the
//! sink made durable, in delivery order. The bounded channel here implements both for one
//! process; the Kafka bus (`highwater-kafka`) for extraction and loading in different ones.
//!
//! The channel: `publish` waits while it is full, so a slow sink slows extraction down instead
//! of letting batches pile up in memory: at most `capacity` messages (batches of at most
//! `batch_rows` rows each, or markers) wait between the two sides.

use std::future::Future;

use tokio::sync::mpsc;

use crate::batch::ChangeBatch;
use crate::cursor::DateTime;
use crate::schema::TableId;
use crate::source::BoxError;

/// What travels from extraction to loading, in order.
#[derive(Debug)]
pub enum Message {
    Batch(ChangeBatch),
    /// Every change of `table` with a cursor up to `bound` (source time, UTC) was published
    /// before this marker: once the batches before it are durable, the sink is complete up to
    /// `bound`.
    CaughtUp {
        table: TableId,
        bound: DateTime,
    },
}

/// Why the bus failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The other side has gone away (it failed or finished).
    #[error("the bus is closed: the other side stopped")]
    Closed,
    #[error("{what} failed")]
    Broker {
        what: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// A message that cannot be carried or read; the message names the table and the fix.
    #[error("{0}")]
    Message(String),
}

impl BusError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, BusError::Broker { retryable: true, .. })
    }
}

/// The extraction side of a bus.
pub trait Publish: Send + 'static {
    /// Hands a message over, waiting while the bus is full.
    fn publish(&mut self, message: Message) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Whether a completed `publish` means the message survives this process (the brokers
    /// acknowledged it), so the extractor may checkpoint what it published.
    fn durable(&self) -> bool;
}

/// The loading side of a bus.
pub trait Subscribe: Send + 'static {
    /// Says which messages the sink made durable.
    type Ack: Send + 'static;

    /// The next message and its ack; `None` when the bus has nothing more for this run.
    fn next(&mut self) -> impl Future<Output = Result<Option<(Message, Self::Ack)>, BusError>> + Send;

    /// The sink made the messages of these acks (and all before them) durable.
    fn ack(&mut self, acks: Vec<Self::Ack>) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Whether the messages come from an extractor in this process that counted them in
    /// `highwater_bus_batches_in_flight` (the channel): the loader then counts them out.
    fn local(&self) -> bool;
}

/// A bounded channel of `capacity` messages.
pub fn channel(capacity: usize) -> (Publisher, Subscriber) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Publisher(tx), Subscriber(rx))
}

/// The extraction side of the channel.
pub struct Publisher(mpsc::Sender<Message>);

impl Publish for Publisher {
    async fn publish(&mut self, message: Message) -> Result<(), BusError> {
        self.0.send(message).await.map_err(|_| BusError::Closed)
    }

    fn durable(&self) -> bool {
        false
    }
}

/// The loading side of the channel: it ends when the publisher is gone and all are taken.
pub struct Subscriber(mpsc::Receiver<Message>);

impl Subscribe for Subscriber {
    type Ack = ();

    async fn next(&mut self) -> Result<Option<(Message, ())>, BusError> {
        Ok(self.0.recv().await.map(|m| (m, ())))
    }

    async fn ack(&mut self, _acks: Vec<()>) -> Result<(), BusError> {
        // Nothing outlives the process in a channel: the checkpoints are the record.
        Ok(())
    }

    fn local(&self) -> bool {
        true
    }
}
