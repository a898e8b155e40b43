//! Where a table's extraction stands, and the total order rows are read in.
//!
//! Rows are read in the order `(cursor column, primary key...)`. Rows whose cursor is NULL
//! come first, in key order, and are read once: a NULL cursor can never show a later change.
//! A [`Position`] names the last row read; the next read starts strictly after it, so rows
//! with equal cursor values on both sides of a batch boundary are neither skipped nor repeated.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::civil;

/// A MySQL DATE/DATETIME/TIMESTAMP value exactly as the server stores it. Zero and
/// partial-zero dates (`0000-00-00`, `2020-00-15`) are values too: a cursor column can hold
/// them, and the field order makes the derived `Ord` chronological, as MySQL sorts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl DateTime {
    /// Microseconds since 1970-01-01 00:00:00, or `None` for a zero or partial-zero date.
    pub fn unix_micros(&self) -> Option<i64> {
        let (y, m, d) = (i32::from(self.year), u32::from(self.month), u32::from(self.day));
        if !civil::is_valid_date(y, m, d) {
            return None;
        }
        let days = i64::from(civil::days_from_civil(y, m, d));
        let secs = i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        Some(days * civil::MICROS_PER_DAY + secs * 1_000_000 + i64::from(self.micros))
    }

    /// The value at `micros` since the epoch (always a real date).
    pub fn from_unix_micros(micros: i64) -> Self {
        let days = micros.div_euclid(civil::MICROS_PER_DAY);
        let in_day = micros.rem_euclid(civil::MICROS_PER_DAY);
        let (y, m, d) = civil::civil_from_days(days as i32);
        let secs = in_day / 1_000_000;
        DateTime {
            year: y as u16,
            month: m as u8,
            day: d as u8,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
            micros: (in_day % 1_000_000) as u32,
        }
    }

    /// A compact form for file names: `20261121T100000123456`.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// A string that is not `YYYY-MM-DD HH:MM:SS[.ffffff]`.
#[derive(Debug, thiserror::Error)]
#[error("not a datetime of the form YYYY-MM-DD HH:MM:SS[.ffffff]: {0:?}")]
pub struct ParseDateTimeError(String);

impl FromStr for DateTime {
    type Err = ParseDateTimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDateTimeError(s.to_owned());
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u32, ParseDateTimeError> {
            s.get(range).and_then(|p| p.parse().ok()).ok_or_else(err)
        };
        let micros = match s.get(19..) {
            Some("") => 0,
            Some(frac) if frac.starts_with('.') && (2..=7).contains(&frac.len()) => {
                let digits = &frac[1..];
                let v: u32 = digits.parse().map_err(|_| err())?;
                v * 10u32.pow(6 - digits.len() as u32)
            }
            _ => return Err(err()),
        };
        let dt = DateTime {
            year: num(0..4)? as u16,
            month: num(5..7)? as u8,
            day: num(8..10)? as u8,
            hour: num(11..13)? as u8,
            minute: num(14..16)? as u8,
            second: num(17..19)? as u8,
            micros,
        };
        if dt.month > 12 || dt.day > 31 || dt.hour > 23 || dt.minute > 59 || dt.second > 59 {
            return Err(err());
        }
        Ok(dt)
    }
}

impl From<DateTime> for String {
    fn from(v: DateTime) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for DateTime {
    type Error = ParseDateTimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// One primary-key column's value in a position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    Int(i64),
    UInt(u64),
    /// Text in the column's collation; its order is the server's, not Rust's.
    Text(String),
    /// Binary strings, stored as hex in checkpoints.
    Bytes(#[serde(with = "hex_bytes")] Vec<u8>),
    DateTime(DateTime),
    /// TIME, as signed microseconds.
    Time(i64),
    /// DECIMAL, as the server's text.
    Decimal(String),
}

impl KeyValue {
    /// Compares two key values when Rust can know the server's order: numbers, binary strings
    /// and times. Text and decimals follow a collation or a scale only the server knows: `None`
    /// unless they are equal.
    fn known_cmp(&self, other: &KeyValue) -> Option<Ordering> {
        use KeyValue::*;
        match (self, other) {
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (UInt(a), UInt(b)) => Some(a.cmp(b)),
            (Int(a), UInt(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
            (UInt(a), Int(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (DateTime(a), DateTime(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            (a, b) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }

    /// A file-name-safe token: digits for numbers, the text itself when it is plain ASCII
    /// letters and digits, hex otherwise.
    fn token(&self) -> String {
        match self {
            KeyValue::Int(v) if *v < 0 => format!("m{}", v.unsigned_abs()),
            KeyValue::Int(v) => v.to_string(),
            KeyValue::UInt(v) => v.to_string(),
            KeyValue::Time(v) if *v < 0 => format!("m{}", v.unsigned_abs()),
            KeyValue::Time(v) => v.to_string(),
            KeyValue::DateTime(v) => v.compact(),
            KeyValue::Text(s) | KeyValue::Decimal(s)
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                s.clone()
            }
            KeyValue::Text(s) | KeyValue::Decimal(s) => format!("x{}", hex(s.as_bytes())),
            KeyValue::Bytes(b) => format!("x{}", hex(b)),
        }
    }
}

/// The values of the primary-key columns, in key order.
pub type Key = Vec<KeyValue>;

/// Where a table's extraction stands: the last row read, in the total order.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Position {
    /// Nothing read yet: next come the rows with a NULL cursor, by key, then all others.
    #[default]
    Start,
    /// Inside the rows whose cursor is NULL: the key of the last one read.
    NullCursor { key: Key },
    /// In cursor order: the cursor value and key of the last row read. `nulls`: for a cursor
    /// that admits NULL, how far the rows whose cursor is NULL have been read (see
    /// [`NullsRead`]); absent for NOT NULL cursors and in checkpoints older than it.
    At {
        cursor: DateTime,
        key: Key,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nulls: Option<NullsRead>,
    },
    /// In key order, for a table read by its increasing key alone (an insert-only table whose
    /// cursor is its integer primary key): the key of the last row read.
    Key { key: Key },
    /// In a first copy, which reads in primary-key order (the clustered index) every row whose
    /// cursor is NULL or at most `bound`, the bound taken when the copy began: the key of the
    /// last row read. After the copy, reading goes on in cursor order from the rows whose
    /// cursor is above `bound`: every row at or below it existed when the copy began.
    /// `ranges`: the key ranges of a copy read in parallel (see [`KeyRanges`]).
    Copy {
        bound: DateTime,
        key: Key,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ranges: Option<Box<KeyRanges>>,
    },
}

/// How far a table read in cursor order has read the rows whose cursor is NULL. A NULL cursor
/// sorts before every value, so such a row inserted after the first copy is behind the
/// position for good; each pass therefore first reads the NULL-cursor rows with a key above
/// `upto` (an index range whose cost follows their number), and moves `upto` to the last.
/// A row whose cursor is set to NULL, or inserted with a NULL cursor and a key below `upto`,
/// is not read again: `reconcile` names such rows.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct NullsRead {
    /// The highest key read among them; `None`: none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upto: Option<Key>,
}

/// The key ranges a first copy reads in parallel: how many key values each covers, and the
/// highest key when they were planned. Positions inside the copy carry them, so a copy resumed
/// from one reads the very same ranges, the same batches with the same positions, whatever the
/// table's row estimate or highest key say by then. An extractor that publishes to Kafka and
/// restarts behind what it published (killed between the broker's acknowledgement and its own
/// checkpoint) then sends those batches again under the names the Parquet loader already
/// wrote: the files are rewritten, not added to. Planned afresh, the ranges would differ and
/// the rows between would land in two files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRanges {
    /// Key values per range (at least 1).
    pub step: u64,
    /// The highest key when the ranges were planned: the end of the last one.
    pub max: KeyValue,
}

impl Position {
    /// How this position compares with `other` in the read order, when that can be known
    /// without the server (see [`KeyValue`]). `None` means "cannot tell here".
    pub fn known_cmp(&self, other: &Position) -> Option<Ordering> {
        use Position::*;
        match (self, other) {
            (Start, Start) => Some(Ordering::Equal),
            (Start, _) => Some(Ordering::Less),
            (_, Start) => Some(Ordering::Greater),
            (NullCursor { .. }, At { .. }) | (Copy { .. }, At { .. }) => Some(Ordering::Less),
            (At { .. }, NullCursor { .. }) | (At { .. }, Copy { .. }) => Some(Ordering::Greater),
            (NullCursor { key: a }, NullCursor { key: b }) | (Key { key: a }, Key { key: b }) => cmp_keys(a, b),
            (Copy { bound: ba, key: a, .. }, Copy { bound: bb, key: b, .. }) if ba == bb => cmp_keys(a, b),
            // A table is read either by cursor or by key, never both; a first copy either reads
            // the NULL cursors first (before the key-order copy existed) or copies them.
            (Key { .. }, _) | (_, Key { .. }) | (Copy { .. }, _) | (_, Copy { .. }) => None,
            (At { cursor: ca, key: a, nulls: na }, At { cursor: cb, key: b, nulls: nb }) => match ca.cmp(cb) {
                Ordering::Equal => match cmp_keys(a, b)? {
                    Ordering::Equal => cmp_nulls(na, nb),
                    other => Some(other),
                },
                other => Some(other),
            },
        }
    }

    /// Whether storing `self` over `stored` would move a checkpoint back. Positions whose
    /// order only the server knows are taken as forward: the runner only ever produces them in
    /// read order.
    pub fn is_behind(&self, stored: &Position) -> bool {
        self.known_cmp(stored) == Some(Ordering::Less)
    }

    /// A file-name-safe token naming this position (`start`, `null_<key>`,
    /// `20261121T100000123456_<key>`). Long keys are shortened to a stable hash.
    pub fn file_token(&self) -> String {
        let (head, key) = match self {
            Position::Start => return "start".to_owned(),
            Position::NullCursor { key } => ("null".to_owned(), key),
            Position::At { cursor, key, nulls: Some(NullsRead { upto: Some(upto) }) } => {
                // Two reads of the NULL-cursor rows from the same place differ by this alone.
                let upto = upto.iter().map(KeyValue::token).collect::<Vec<_>>().join("_");
                (format!("{}_n{}", cursor.compact(), upto), key)
            }
            Position::At { cursor, key, .. } => (cursor.compact(), key),
            Position::Key { key } => ("key".to_owned(), key),
            Position::Copy { key, .. } => ("copy".to_owned(), key),
        };
        let key_token = key.iter().map(KeyValue::token).collect::<Vec<_>>().join("_");
        let key_token =
            if key_token.len() > 64 { format!("h{:016x}", fnv1a64(key_token.as_bytes())) } else { key_token };
        format!("{head}_{key_token}")
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start => write!(f, "start"),
            Position::NullCursor { key } => write!(f, "(NULL, {})", DisplayKey(key)),
            Position::At { cursor, key, nulls: Some(NullsRead { upto: Some(upto) }) } => {
                write!(f, "({cursor}, {}; NULL cursors to {})", DisplayKey(key), DisplayKey(upto))
            }
            Position::At { cursor, key, .. } => write!(f, "({cursor}, {})", DisplayKey(key)),
            Position::Key { key } => write!(f, "(key {})", DisplayKey(key)),
            Position::Copy { bound, key, .. } => write!(f, "(first copy up to {bound}, key {})", DisplayKey(key)),
        }
    }
}

struct DisplayKey<'a>(&'a Key);

impl fmt::Display for DisplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match v {
                KeyValue::Int(v) => write!(f, "{v}")?,
                KeyValue::UInt(v) => write!(f, "{v}")?,
                KeyValue::Time(v) => write!(f, "{v}us")?,
                KeyValue::DateTime(v) => write!(f, "{v}")?,
                // Key values name rows; they are shown as a length, never as their content.
                KeyValue::Text(s) | KeyValue::Decimal(s) => write!(f, "<{} bytes>", s.len())?,
                KeyValue::Bytes(b) => write!(f, "<{} bytes>", b.len())?,
            }
        }
        Ok(())
    }
}

/// Marks of the NULL-cursor rows read: absent, then none read, then by key.
fn cmp_nulls(a: &Option<NullsRead>, b: &Option<NullsRead>) -> Option<Ordering> {
    let rank = |n: &Option<NullsRead>| match n {
        None => 0,
        Some(NullsRead { upto: None }) => 1,
        Some(NullsRead { upto: Some(_) }) => 2,
    };
    match (a, b) {
        (Some(NullsRead { upto: Some(x) }), Some(NullsRead { upto: Some(y) })) => cmp_keys(x, y),
        _ => Some(rank(a).cmp(&rank(b))),
    }
}

fn cmp_keys(a: &Key, b: &Key) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match x.known_cmp(y)? {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(a.len().cmp(&b.len()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a: a small hash that never changes between releases, so file names stay stable.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &str) -> DateTime {
        s.parse().expect("valid datetime")
    }

    #[test]
    fn datetime_text_round_trip_including_zero_dates() {
        for s in [
            "2026-11-21 10:00:00.123456",
            "0000-00-00 00:00:00.000000",
            "2020-00-15 00:00:00.000000",
            "9999-12-31 23:59:59.999999",
        ] {
            assert_eq!(dt(s).to_string(), s);
        }
        assert_eq!(dt("2026-11-21 10:00:00").micros, 0);
        assert_eq!(dt("2026-11-21 10:00:00.5").micros, 500_000);
        assert!("2026-11-21".parse::<DateTime>().is_err());
        assert!("2026-13-01 00:00:00".parse::<DateTime>().is_err());
    }

    #[test]
    fn zero_dates_sort_first_and_have_no_unix_time() {
        assert!(dt("0000-00-00 00:00:00") < dt("0001-01-01 00:00:00"));
        assert!(dt("2020-00-15 00:00:00") < dt("2020-01-01 00:00:00"));
        assert_eq!(dt("2020-02-00 10:00:00").unix_micros(), None);
        assert_eq!(dt("1970-01-01 00:00:00").unix_micros(), Some(0));
    }

    #[test]
    fn unix_micros_round_trip() {
        for s in ["1970-01-01 00:00:00.000001", "1969-12-31 23:59:59.999999", "0001-01-01 00:00:00"] {
            let v = dt(s);
            assert_eq!(DateTime::from_unix_micros(v.unix_micros().expect("real date")), v);
        }
    }

    #[test]
    fn positions_order_nulls_first_then_cursor_then_key() {
        let at = |c: &str, k: i64| Position::At { cursor: dt(c), key: vec![KeyValue::Int(k)], nulls: None };
        let null = |k: i64| Position::NullCursor { key: vec![KeyValue::Int(k)] };
        assert!(null(5).is_behind(&at("2020-01-01 00:00:00", 1)));
        assert!(Position::Start.is_behind(&null(1)));
        assert!(at("2020-01-01 00:00:00", 9).is_behind(&at("2020-01-01 00:00:00.000001", 1)));
        assert!(at("2020-01-01 00:00:00", 1).is_behind(&at("2020-01-01 00:00:00", 2)));
        assert!(!at("2020-01-01 00:00:00", 2).is_behind(&at("2020-01-01 00:00:00", 2)));
        let key = |k: u64| Position::Key { key: vec![KeyValue::UInt(k)] };
        assert!(key(9).is_behind(&key(10)) && Position::Start.is_behind(&key(1)));
        assert_eq!(key(1).known_cmp(&at("2020-01-01 00:00:00", 2)), None);
    }

    #[test]
    fn a_first_copy_orders_by_key_and_comes_before_cursor_order() {
        let bound = dt("2026-01-01 00:00:00");
        let copy = |k: u64| Position::Copy { bound, key: vec![KeyValue::UInt(k)], ranges: None };
        assert!(Position::Start.is_behind(&copy(1)));
        assert!(copy(1).is_behind(&copy(2)) && !copy(2).is_behind(&copy(1)));
        // Cursor order follows the copy, whatever the keys.
        let at = Position::At { cursor: dt("2000-01-01 00:00:00"), key: vec![KeyValue::UInt(1)], nulls: None };
        assert!(copy(1_000).is_behind(&at) && !at.is_behind(&copy(1_000)));
        // Copies up to other bounds, and the NULL-cursor phase, cannot be ordered here.
        let other = Position::Copy { bound: dt("2026-01-02 00:00:00"), key: vec![KeyValue::UInt(1)], ranges: None };
        assert_eq!(copy(2).known_cmp(&other), None);
        assert_eq!(copy(2).known_cmp(&Position::NullCursor { key: vec![KeyValue::UInt(1)] }), None);
        assert_eq!(copy(7).file_token(), "copy_7");
        let json = serde_json::to_string(&copy(7)).expect("serializes");
        assert_eq!(serde_json::from_str::<Position>(&json).expect("parses"), copy(7));
        // A copy in key ranges keeps them, and compares as any other copy; positions written
        // before ranges were kept read as copies without them.
        let ranges = Some(Box::new(KeyRanges { step: u64::MAX, max: KeyValue::Int(i64::MIN) }));
        let ranged = Position::Copy { bound, key: vec![KeyValue::UInt(7)], ranges };
        let json = serde_json::to_string(&ranged).expect("serializes");
        assert_eq!(serde_json::from_str::<Position>(&json).expect("parses"), ranged);
        assert_eq!(ranged.file_token(), "copy_7");
        assert_eq!(ranged.known_cmp(&copy(8)), Some(Ordering::Less));
        let old = serde_json::to_string(&copy(7)).expect("serializes");
        assert!(!old.contains("ranges"), "{old}");
    }

    #[test]
    fn reads_of_null_cursors_move_a_position_forward_and_name_their_files_apart() {
        let at = |nulls: Option<NullsRead>| Position::At {
            cursor: dt("2026-01-01 00:00:00"),
            key: vec![KeyValue::Int(5)],
            nulls,
        };
        let upto = |k: i64| Some(NullsRead { upto: Some(vec![KeyValue::Int(k)]) });
        let none_yet = Some(NullsRead { upto: None });
        // Older checkpoints (no mark), none read yet, then by key.
        assert!(at(None).is_behind(&at(none_yet.clone())));
        assert!(at(none_yet.clone()).is_behind(&at(upto(1))));
        assert!(at(upto(1)).is_behind(&at(upto(2))) && !at(upto(2)).is_behind(&at(upto(1))));
        // The cursor and key come first.
        let later = Position::At { cursor: dt("2026-01-01 00:00:01"), key: vec![KeyValue::Int(1)], nulls: None };
        assert!(at(upto(9)).is_behind(&later));
        assert_eq!(at(upto(7)).file_token(), "20260101T000000000000_n7_5");
        assert_eq!(at(none_yet.clone()).file_token(), at(None).file_token());
        assert_ne!(at(upto(7)).file_token(), at(upto(8)).file_token());
        // Written without the mark (before it existed, or for NOT NULL cursors), read back so.
        let json = serde_json::to_string(&at(None)).expect("serializes");
        assert!(!json.contains("nulls"), "{json}");
        assert_eq!(serde_json::from_str::<Position>(&json).expect("parses"), at(None));
        let json = serde_json::to_string(&at(none_yet.clone())).expect("serializes");
        assert_eq!(serde_json::from_str::<Position>(&json).expect("parses"), at(none_yet));
    }

    #[test]
    fn text_keys_defer_to_the_server_order() {
        let at = |k: &str| Position::At {
            cursor: dt("2020-01-01 00:00:00"),
            key: vec![KeyValue::Text(k.to_owned())],
            nulls: None,
        };
        // Under a case-insensitive collation "B" may come after "a": Rust must not decide.
        assert_eq!(at("B").known_cmp(&at("a")), None);
        assert!(!at("B").is_behind(&at("a")));
        assert_eq!(at("a").known_cmp(&at("a")), Some(Ordering::Equal));
    }

    #[test]
    fn file_tokens_are_safe_and_stable() {
        let p = Position::At {
            cursor: dt("2026-11-21 10:00:00.123456"),
            key: vec![KeyValue::Int(-4711), KeyValue::Text("a b/c".into()), KeyValue::UInt(7)],
            nulls: None,
        };
        assert_eq!(p.file_token(), "20261121T100000123456_m4711_x6120622f63_7");
        assert_eq!(Position::Start.file_token(), "start");
        let long = Position::NullCursor { key: vec![KeyValue::Text("é".repeat(40))] };
        let token = long.file_token();
        assert!(token.starts_with("null_h") && token.len() == 22, "{token}");
        assert_eq!(token, long.file_token());
        assert!(!token.contains('-'));
    }

    #[test]
    fn positions_survive_json() {
        let p = Position::At {
            cursor: dt("0000-00-00 00:00:00"),
            key: vec![KeyValue::Bytes(vec![0, 255]), KeyValue::UInt(u64::MAX), KeyValue::Time(-1)],
            nulls: Some(NullsRead { upto: Some(vec![KeyValue::Int(-3)]) }),
        };
        let json = serde_json::to_string(&p).expect("serializes");
        assert_eq!(serde_json::from_str::<Position>(&json).expect("parses"), p);
    }

    /// Model of keyset pagination: rows sorted by (cursor, key); each page takes up to `limit`
    /// rows strictly after the last position. With many equal cursor values, every row must
    /// be read exactly once, whatever the page size.
    fn paginate(rows: &[(Option<u8>, i64)], limit: usize) -> Vec<(Option<u8>, i64)> {
        let pos_of = |r: &(Option<u8>, i64)| match r.0 {
            None => Position::NullCursor { key: vec![KeyValue::Int(r.1)] },
            Some(c) => Position::At {
                cursor: DateTime::from_unix_micros(i64::from(c)),
                key: vec![KeyValue::Int(r.1)],
                nulls: None,
            },
        };
        let mut sorted: Vec<_> = rows.to_vec();
        sorted.sort_by(|a, b| pos_of(a).known_cmp(&pos_of(b)).expect("integer keys order"));
        let mut out = Vec::new();
        let mut after = Position::Start;
        loop {
            let page: Vec<_> = sorted.iter().filter(|r| after.is_behind(&pos_of(r))).take(limit).copied().collect();
            let Some(last) = page.last() else { break };
            after = pos_of(last);
            out.extend(page);
        }
        out
    }

    proptest! {
        #[test]
        fn keyset_pages_read_every_row_once(
            cursors in proptest::collection::vec(proptest::option::weighted(0.9, 0u8..4), 0..200),
            limit in 1usize..20,
        ) {
            let rows: Vec<_> = cursors.iter().enumerate().map(|(i, c)| (*c, i as i64)).collect();
            let mut read = paginate(&rows, limit);
            read.sort_by_key(|r| r.1);
            prop_assert_eq!(read, rows);
        }
    }
}
