//! A bulk load open across batches: `LOAD DATA LOCAL` statements running on up to
//! `BULK_PARTS` connections at once, each reading its file from a channel as batches arrive,
//! each in a transaction that commits only when the load is finished.
//!
//! Each batch is split in as many consecutive parts as the load has connections, and part `p`
//! goes down connection `p`'s file. The statements run while the next batches are read and
//! encoded, so the server inserts without a pause between batches; a load ended at every batch
//! (all parts done, committed, the next begun) left it idle at each end and cost about 10% of a
//! first copy into MySQL. The load holds its batches until it commits: when it cannot (a row
//! the target already has, a value that does not fit, a lost connection), the sink rolls every
//! part back and writes those batches again by guarded upserts. A server that waits longer than
//! its `net_read_timeout` (30 s by default) for the next packet, while the source is retrying
//! say, ends the statement with an error: the same way back.

use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use highwater_pipeline::batch::ChangeBatch;
use highwater_pipeline::schema::TableId;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::infile;

/// The size of each packet of a `LOAD DATA LOCAL` file: far below the 1 MiB minimum of
/// `max_allowed_packet`, large enough that per-packet work does not count.
const INFILE_CHUNK_BYTES: usize = 256 << 10;

/// Packets queued for each part's statement: a part's file waits in memory for at most this
/// many (1 MiB), then encoding waits for the server.
const QUEUED_CHUNKS: usize = 4;

/// What one part's statement did: its connection, and the rows it inserted and the warnings
/// it raised, or why it failed.
type PartOutcome = (Conn, Result<(u64, u16), mysql_async::Error>);

/// A load under way: its parts' statements run, fed batch by batch, none committed.
pub(super) struct OpenLoad {
    pub table: TableId,
    /// Each part's file; dropping one ends that file, and so its statement.
    feeds: Vec<mpsc::Sender<io::Result<Bytes>>>,
    parts: Vec<JoinHandle<PartOutcome>>,
    /// Rows sent down each part's file.
    sent: Vec<u64>,
    /// The batches in the load, in order.
    pub batches: Vec<ChangeBatch>,
    /// Their rows' size in memory.
    pub held_bytes: usize,
    /// A part's file could not take a packet: its statement ended early.
    broken: bool,
}

/// How a finished load went.
pub(super) enum Finished {
    /// Every part inserted every row it was sent, with no warning: the transactions are open
    /// on these connections, in part order, for the caller to commit.
    Inserted(Vec<Conn>),
    /// Rolled back. Declined (a row the target had, a value that did not fit), why.
    Declined(String),
    /// Rolled back. A statement failed (the first error).
    Failed(mysql_async::Error),
}

impl OpenLoad {
    /// Starts `sql` (see [`infile::statement`]) on each connection, in a transaction; the
    /// files stay open until [`Self::finish`].
    pub fn open(table: TableId, conns: Vec<Conn>, sql: &str) -> Self {
        let mut feeds = Vec::with_capacity(conns.len());
        let mut parts = Vec::with_capacity(conns.len());
        for mut conn in conns {
            let (feed, file) = mpsc::channel::<io::Result<Bytes>>(QUEUED_CHUNKS);
            feeds.push(feed);
            let sql = sql.to_owned();
            parts.push(tokio::spawn(async move {
                let file = futures_util::stream::unfold(file, |mut file| async move {
                    file.recv().await.map(|chunk| (chunk, file))
                });
                // A one-time handler: the next LOAD DATA LOCAL on this connection reads it.
                conn.set_infile_handler(async move { Ok(file.boxed()) });
                let outcome = match conn.query_drop("START TRANSACTION").await {
                    Ok(()) => conn.query_drop(&sql).await.map(|()| (conn.affected_rows(), conn.get_warnings())),
                    Err(e) => Err(e),
                };
                // A statement that failed before it read its file (the server went away) left
                // the handler, and the file's receiving end with it, in the connection: `feed`
                // would wait for ever on the full channel. Replacing the handler ends the file.
                conn.set_infile_handler(async { Err(mysql_async::Error::Other("this load is over".into())) });
                (conn, outcome)
            }));
        }
        let sent = vec![0; feeds.len()];
        OpenLoad { table, feeds, parts, sent, batches: Vec::new(), held_bytes: 0, broken: false }
    }

    /// Sends `batch`'s rows down the parts' files, and holds the batch. `Err`: a value that
    /// cannot be written as a file's field, naming why; the load can only be rolled back.
    /// A part whose statement has already ended is found by [`Self::finish`].
    pub async fn feed(&mut self, batch: &ChangeBatch) -> Result<(), String> {
        self.batches.push(batch.clone());
        self.held_bytes += batch.rows.get_array_memory_size();
        let n = batch.num_rows();
        let parts = self.feeds.len();
        for (p, feed) in self.feeds.iter().enumerate() {
            let rows = p * n / parts..(p + 1) * n / parts;
            if rows.is_empty() || self.broken {
                continue;
            }
            self.sent[p] += rows.len() as u64;
            let data = Bytes::from(infile::encode(&batch.rows, rows)?);
            for at in (0..data.len()).step_by(INFILE_CHUNK_BYTES) {
                let chunk = data.slice(at..data.len().min(at + INFILE_CHUNK_BYTES));
                if feed.send(Ok(chunk)).await.is_err() {
                    // The statement ended (it failed): what it says is read when it is finished.
                    self.broken = true;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Ends the files and waits for the statements. Whatever does not take every row is
    /// rolled back on every part.
    pub async fn finish(self) -> Finished {
        drop(self.feeds);
        let mut conns = Vec::with_capacity(self.parts.len());
        let mut failed = None;
        let mut declined = None;
        for (part, sent) in self.parts.into_iter().zip(self.sent) {
            match part.await {
                Ok((conn, Ok((inserted, warnings)))) => {
                    if (inserted != sent || warnings > 0) && declined.is_none() {
                        declined = Some((inserted, sent, warnings, conns.len()));
                    }
                    conns.push(conn);
                }
                Ok((conn, Err(e))) => {
                    failed = failed.or(Some(e));
                    conns.push(conn);
                }
                Err(e) => failed = failed.or(Some(mysql_async::Error::Other(Box::new(e)))),
            }
        }
        if failed.is_none() && declined.is_none() {
            return Finished::Inserted(conns);
        }
        let mut why = String::new();
        if let Some((inserted, sent, warnings, at)) = declined {
            let first: Option<(String, u16, String)> =
                conns[at].query_first("SHOW WARNINGS LIMIT 1").await.unwrap_or_default();
            let first = first.map_or(String::new(), |(_, code, message)| format!(", first: {code} {message}"));
            why =
                format!("a bulk load inserted {inserted} of {sent} rows with {warnings} warnings{first} (rolled back)");
        }
        for conn in &mut conns {
            // A connection that failed is reset by the pool, which rolls back as well.
            let _ = conn.query_drop("ROLLBACK").await;
        }
        match failed {
            Some(e) => Finished::Failed(e),
            None => Finished::Declined(why),
        }
    }
}
