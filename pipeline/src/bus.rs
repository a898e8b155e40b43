//! The bus between extraction and loading: a bounded in-process channel.
//!
//! `publish` waits while the channel is full, so a slow sink slows extraction down instead of
//! letting batches pile up in memory: at most `capacity` batches (of at most `batch_rows` rows
//! each) wait between the two sides.

use tokio::sync::mpsc;

use crate::batch::ChangeBatch;

/// The loading side has gone away (it failed or finished).
#[derive(Debug, thiserror::Error)]
#[error("the loader stopped taking batches")]
pub struct BusClosed;

/// A bounded channel of `capacity` batches.
pub fn channel(capacity: usize) -> (Publisher, Subscriber) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Publisher(tx), Subscriber(rx))
}

/// The extraction side.
pub struct Publisher(mpsc::Sender<ChangeBatch>);

impl Publisher {
    /// Hands a batch over, waiting while the channel is full.
    pub async fn publish(&self, batch: ChangeBatch) -> Result<(), BusClosed> {
        self.0.send(batch).await.map_err(|_| BusClosed)
    }
}

/// The loading side.
pub struct Subscriber(mpsc::Receiver<ChangeBatch>);

impl Subscriber {
    /// The next batch, in publish order; `None` once the publisher is gone and all are taken.
    pub async fn next(&mut self) -> Option<ChangeBatch> {
        self.0.recv().await
    }
}
