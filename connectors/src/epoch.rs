//! Integer cursors that count Unix time, shared by the sources that read them.

use serde::Deserialize;

/// The unit an integer cursor counts Unix time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochUnit {
    Seconds,
    Milliseconds,
    Microseconds,
}

impl EpochUnit {
    /// The unit in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            EpochUnit::Seconds => 1_000_000,
            EpochUnit::Milliseconds => 1_000,
            EpochUnit::Microseconds => 1,
        }
    }

    /// The unit as the config names it.
    pub fn as_str(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Milliseconds => "milliseconds",
            EpochUnit::Microseconds => "microseconds",
        }
    }
}
