//! The incremental MySQL-family source.

pub mod bound;
pub mod check;
pub mod clock;
pub mod config;
mod connect;
mod decode;
mod discover;
mod extract;
mod query;
mod ranges;
mod reread;
pub mod types;

pub use extract::MysqlSource;
