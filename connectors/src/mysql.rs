//! The incremental MySQL-family source.

pub mod bound;
pub mod check;
pub mod clock;
pub mod config;
mod connect;
mod copy;
mod decode;
mod discover;
mod extract;
mod page;
mod query;
mod ranges;
mod reread;
mod table;
pub mod types;

pub use extract::MysqlSource;
