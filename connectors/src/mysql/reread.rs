//! Re-reading a window behind the checkpoint (`reread_secs`), for rows that change without
//! their cursor moving (Matomo writes `time_spent` onto earlier actions and anonymises visits
//! in place).
//!
//! Each pass of such a table starts `reread_secs` before its checkpoint. [`Seen`] remembers a
//! hash of every row it let through, by key, so that only rows whose content changed go to the
//! sink again: the MySQL sink applies them (its version guard takes an equal cursor), Parquet
//! gets a file of just those rows. The memory is the process's: the first pass after a start
//! sends the whole window once, which sinks take as a replay.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use mysql_async::{Row, Value};

/// The rows let through lately, by key hash: (content hash, cursor in µs since the epoch).
pub struct Seen {
    window_micros: i64,
    rows: HashMap<u64, (u64, i64)>,
    newest: i64,
}

impl Seen {
    pub fn new(window: Duration) -> Self {
        Seen {
            window_micros: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            rows: HashMap::new(),
            newest: i64::MIN,
        }
    }

    /// Whether the row is new or its content changed since it was last let through; records it.
    pub fn changed(&mut self, key: u64, content: u64, cursor_micros: i64) -> bool {
        self.newest = self.newest.max(cursor_micros);
        match self.rows.insert(key, (content, cursor_micros)) {
            Some((before, _)) => before != content,
            None => true,
        }
    }

    /// Forgets rows too old to be re-read again.
    pub fn prune(&mut self) {
        let oldest = self.newest.saturating_sub(self.window_micros);
        self.rows.retain(|_, (_, cursor)| *cursor >= oldest);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
}

/// A hash of the values of `columns` of `row` (stable within the process).
pub fn hash_row(row: &Row, columns: impl IntoIterator<Item = usize>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for i in columns {
        hash_value(&mut h, row.as_ref(i));
    }
    h.finish()
}

fn hash_value(h: &mut impl Hasher, v: Option<&Value>) {
    match v {
        None | Some(Value::NULL) => 0u8.hash(h),
        Some(Value::Bytes(b)) => (1u8, b).hash(h),
        Some(Value::Int(n)) => (2u8, n).hash(h),
        Some(Value::UInt(n)) => (3u8, n).hash(h),
        Some(Value::Float(f)) => (4u8, f.to_bits()).hash(h),
        Some(Value::Double(f)) => (5u8, f.to_bits()).hash(h),
        Some(Value::Date(y, mo, d, hh, mi, s, us)) => (6u8, y, mo, d, hh, mi, s, us).hash(h),
        Some(Value::Time(neg, d, hh, mi, s, us)) => (7u8, neg, d, hh, mi, s, us).hash(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_or_changed_rows_pass_and_old_ones_are_forgotten() {
        let mut seen = Seen::new(Duration::from_secs(10));
        assert!(seen.changed(1, 100, 0), "new");
        assert!(!seen.changed(1, 100, 0), "the same content again");
        assert!(seen.changed(1, 101, 0), "changed without its cursor moving");
        assert!(seen.changed(2, 7, 5_000_000));
        assert!(seen.changed(3, 7, 20_000_000));
        seen.prune();
        assert_eq!(seen.len(), 1, "rows older than the window behind the newest are forgotten");
        assert!(seen.changed(1, 101, 0), "a forgotten row passes again (a replay, harmless)");
    }
}
