//! The bus between extraction and loading: a bounded in-process channel.
//!
//! `publish` waits while the channel is full, so a slow sink slows extraction down instead of
//! letting batches pile up in memory: at most `capacity` messages (batches of at most
//! `batch_rows` rows each, or markers) wait between the two sides.

use tokio::sync::mpsc;

use crate::batch::ChangeBatch;
use crate::cursor::DateTime;
use crate::schema::TableId;

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

/// The loading side has gone away (it failed or finished).
#[derive(Debug, thiserror::Error)]
#[error("the loader stopped taking batches")]
pub struct BusClosed;

/// A bounded channel of `capacity` messages.
pub fn channel(capacity: usize) -> (Publisher, Subscriber) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Publisher(tx), Subscriber(rx))
}

/// The extraction side.
pub struct Publisher(mpsc::Sender<Message>);

impl Publisher {
    /// Hands a message over, waiting while the channel is full.
    pub async fn publish(&self, message: Message) -> Result<(), BusClosed> {
        self.0.send(message).await.map_err(|_| BusClosed)
    }
}

/// The loading side.
pub struct Subscriber(mpsc::Receiver<Message>);

impl Subscriber {
    /// The next message, in publish order; `None` once the publisher is gone and all are taken.
    pub async fn next(&mut self) -> Option<Message> {
        self.0.recv().await
    }
}
