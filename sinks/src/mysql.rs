//! The MySQL-family sink.

mod bulk;
pub mod config;
mod ddl;
mod foreign;
mod infile;
mod literal;
mod lock;
pub mod reconcile;
mod sink;
mod upsert;

pub use sink::{CHECKPOINT_TABLE, MysqlCheckpointStore, MysqlSink};
