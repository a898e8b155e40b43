//! Cursor values of a SQLite table and the pass's bound.
//!
//! SQLite has no date type: a cursor holds ISO 8601 text (`2026-12-05 03:00:00`,
//! `2026-12-05T03:00:00.123Z`) or an integer count of Unix time. SQLite compares text as
//! text, so the keyset stays in time order only while every value has the same form: the form
//! is read off the column's lowest and highest values, each value read is checked against it,
//! and the bound and positions are written back in it. There is no server clock: the bound is
//! this machine's clock, less `lag_secs`, in the zone the text is written in, and below the
//! unit (day, second, millisecond) the newest values are still filling.

use highwater_pipeline::cursor::DateTime;
use rusqlite::types::{Value, ValueRef};

use crate::epoch::EpochUnit;

/// How one form of ISO 8601 text is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextForm {
    /// `YYYY-MM-DD` alone.
    pub date_only: bool,
    /// `' '` or `'T'` between date and time.
    pub separator: u8,
    /// Whether the seconds are written (`HH:MM` alone otherwise).
    pub seconds: bool,
    /// Digits after the seconds' point (0 to 6).
    pub fraction: u8,
    /// What follows: nothing, `Z` or `+00:00`.
    pub suffix: &'static str,
}

/// SQLite's own form (`CURRENT_TIMESTAMP`, `datetime('now')`), and the one that sorts first
/// among same-day forms: the form assumed until the column holds a value.
pub const SQLITE_FORM: TextForm =
    TextForm { date_only: false, separator: b' ', seconds: true, fraction: 0, suffix: "" };

impl TextForm {
    /// Reads `text` and the form it is written in.
    pub fn parse(text: &str) -> Option<(DateTime, TextForm)> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let s = text.get(r)?;
            s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (year, month, day) = (year as u16, month as u8, day as u8);
        let mut dt = DateTime { year, month, day, hour: 0, minute: 0, second: 0, micros: 0 };
        let mut form = TextForm { date_only: true, separator: b' ', seconds: false, fraction: 0, suffix: "" };
        if b.len() > 10 {
            form.date_only = false;
            form.separator = b[10];
            if !(form.separator == b' ' || form.separator == b'T') || b.len() < 16 || b[13] != b':' {
                return None;
            }
            dt.hour = digits(11..13)? as u8;
            dt.minute = digits(14..16)? as u8;
            let mut at = 16;
            if b.get(16) == Some(&b':') {
                form.seconds = true;
                dt.second = digits(17..19)? as u8;
                at = 19;
                if b.get(19) == Some(&b'.') {
                    let n = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if !(1..=6).contains(&n) {
                        return None;
                    }
                    dt.micros = digits(20..20 + n)? * 10u32.pow(6 - n as u32);
                    form.fraction = n as u8;
                    at = 20 + n;
                }
            }
            form.suffix = match &text[at..] {
                "" => "",
                "Z" => "Z",
                "+00:00" => "+00:00",
                _ => return None,
            };
        }
        let real = dt.unix_micros().is_some() && dt.hour < 24 && dt.minute < 60 && dt.second < 60;
        real.then_some((dt, form))
    }

    /// `dt` written in this form (finer parts cut off).
    pub fn render(&self, dt: &DateTime) -> String {
        let mut s = format!("{:04}-{:02}-{:02}", dt.year, dt.month, dt.day);
        if self.date_only {
            return s;
        }
        s.push(self.separator as char);
        s.push_str(&format!("{:02}:{:02}", dt.hour, dt.minute));
        if self.seconds {
            s.push_str(&format!(":{:02}", dt.second));
            if self.fraction > 0 {
                let digits = format!("{:06}", dt.micros);
                s.push('.');
                s.push_str(&digits[..usize::from(self.fraction)]);
            }
        }
        s.push_str(self.suffix);
        s
    }

    /// The smallest step between two values of this form, in microseconds.
    pub fn unit_micros(&self) -> i64 {
        match (self.date_only, self.seconds) {
            (true, _) => 86_400_000_000,
            (false, false) => 60_000_000,
            (false, true) => 10i64.pow(6 - u32::from(self.fraction)),
        }
    }
}

/// How a table's cursor values are read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// ISO 8601 text in one form, at `offset_secs` east of UTC.
    Text { form: TextForm, offset_secs: i64 },
    /// An integer count of Unix time.
    Epoch(EpochUnit),
}

impl Clock {
    /// The cursor value `v`, or why it is not one.
    pub fn value(&self, v: ValueRef<'_>) -> Result<DateTime, String> {
        match (self, v) {
            (Clock::Text { form, .. }, ValueRef::Text(t)) => {
                let text = std::str::from_utf8(t).map_err(|_| "cursor text is not UTF-8".to_owned())?;
                match TextForm::parse(text) {
                    Some((dt, f)) if f == *form => Ok(dt),
                    Some(_) => Err(format!(
                        "cursor value {text:?} is not written as the column's other values are ({:?}): SQLite \
                         compares text as text, so one form is needed for time order",
                        form.render(&DateTime {
                            year: 2026,
                            month: 1,
                            day: 2,
                            hour: 3,
                            minute: 4,
                            second: 5,
                            micros: 600_000
                        })
                    )),
                    None => Err(format!("cursor value {text:?} is not an ISO 8601 date")),
                }
            }
            (Clock::Text { .. }, ValueRef::Integer(_) | ValueRef::Real(_)) => Err(
                "the cursor holds a number: set cursor_unit (\"seconds\", \"milliseconds\" or \"microseconds\") if it \
                 counts Unix time"
                    .to_owned(),
            ),
            (Clock::Epoch(unit), ValueRef::Integer(n)) => {
                let micros = n.checked_mul(unit.micros()).filter(|m| m.abs() < MAX_MICROS);
                micros.map(DateTime::from_unix_micros).ok_or_else(|| {
                    format!("cursor value {n} {} is past the year 9999: is cursor_unit right?", unit.as_str())
                })
            }
            (Clock::Epoch(_), other) => {
                Err(format!("the cursor holds {} where cursor_unit expects an integer", class(other)))
            }
            (_, other) => Err(format!("the cursor holds {}", class(other))),
        }
    }

    /// The SQL parameter for `dt`.
    pub fn param(&self, dt: &DateTime) -> Value {
        match self {
            Clock::Text { form, .. } => Value::Text(form.render(dt)),
            Clock::Epoch(unit) => Value::Integer(dt.unix_micros().unwrap_or(0).div_euclid(unit.micros())),
        }
    }

    /// The pass's bound at `now_micros` (UTC, from this machine's clock), less `lag_micros`:
    /// the latest value whose unit (day, second) can no longer receive rows.
    pub fn bound(&self, now_micros: i64, lag_micros: i64) -> DateTime {
        let (local, unit) = match self {
            Clock::Text { form, offset_secs } => (now_micros + offset_secs * 1_000_000, form.unit_micros()),
            Clock::Epoch(unit) => (now_micros, unit.micros()),
        };
        let at = local - lag_micros;
        DateTime::from_unix_micros(at - at.rem_euclid(unit) - 1)
    }
}

/// Microseconds from 1970 to the end of 9999.
const MAX_MICROS: i64 = 253_402_300_800_000_000;

/// A value's storage class as SQLite's `typeof()` names it.
pub fn class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "integer",
        ValueRef::Real(_) => "real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "blob",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime {
        s.parse().expect("datetime")
    }

    #[test]
    fn every_form_reads_and_writes_back_the_same_text() {
        for text in [
            "2026-12-05",
            "2026-12-05 03:04",
            "2026-12-05 03:04:05",
            "2026-12-05T03:04:05",
            "2026-12-05T03:04:05.123Z",
            "2026-12-05 03:04:05.123456",
            "2026-12-05T03:04:05.1+00:00",
            "1970-01-01 00:00:00",
        ] {
            let (value, form) = TextForm::parse(text).expect(text);
            assert_eq!(form.render(&value), text);
        }
        for bad in [
            "2026-13-05",
            "2026-02-30 00:00:00",
            "2026-12-05 24:00:00",
            "2026-12-05X03:04:05",
            "2026-12-05 03:04:05.1234567",
            "2026-12-05 03:04:05+02:00",
            "20261205",
            "",
        ] {
            assert_eq!(TextForm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_value_in_another_form_than_the_columns_is_refused() {
        let (_, form) = TextForm::parse("2026-12-05 03:04:05").expect("form");
        let clock = Clock::Text { form, offset_secs: 0 };
        assert_eq!(clock.value(ValueRef::Text(b"2026-12-05 03:04:06")), Ok(dt("2026-12-05 03:04:06")));
        let other = clock.value(ValueRef::Text(b"2026-12-05T03:04:06Z")).expect_err("other form");
        assert!(other.contains("not written as the column's other values are"), "{other}");
        assert!(clock.value(ValueRef::Integer(5)).expect_err("number").contains("cursor_unit"));
    }

    #[test]
    fn the_bound_stays_below_the_unit_still_filling() {
        let now = dt("2026-12-05 10:00:05.500000").unix_micros().expect("real");
        let form = |t: &str| TextForm::parse(t).expect("form").1;
        let seconds = Clock::Text { form: form("2026-01-01 00:00:00"), offset_secs: 0 };
        assert_eq!(seconds.bound(now, 0), dt("2026-12-05 10:00:04.999999"));
        assert_eq!(seconds.param(&seconds.bound(now, 0)), Value::Text("2026-12-05 10:00:04".into()));
        let days = Clock::Text { form: form("2026-01-01"), offset_secs: 0 };
        assert_eq!(days.param(&days.bound(now, 0)), Value::Text("2026-12-04".into()));
        // Local text: the same instant is eight hours later on a clock at +08:00.
        let east = Clock::Text { form: form("2026-01-01 00:00:00.000"), offset_secs: 8 * 3600 };
        assert_eq!(east.param(&east.bound(now, 2_000_000)), Value::Text("2026-12-05 18:00:03.499".into()));
        let ms = Clock::Epoch(EpochUnit::Milliseconds);
        assert_eq!(ms.param(&ms.bound(now, 0)), Value::Integer(now / 1000 - 1));
        let secs = Clock::Epoch(EpochUnit::Seconds);
        assert_eq!(secs.param(&secs.bound(now, 0)), Value::Integer(now / 1_000_000 - 1));
        assert_eq!(secs.value(ValueRef::Integer(now / 1_000_000)), Ok(dt("2026-12-05 10:00:05")));
        assert!(secs.value(ValueRef::Integer(now)).expect_err("µs read as s").contains("9999"));
    }
}
