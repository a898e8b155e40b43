//! What cursor value a pass may read up to: the server's clock in the zone the cursor's values
//! are written in, below the unit (second, day) a coarse cursor is still filling.
//!
//! The source's sessions run in `+00:00`, so `NOW(6)`, the open transactions' starts and
//! `TIMESTAMP` values all arrive in UTC. A `DATETIME` or `DATE` column holds no zone: it holds
//! the wall-clock time of whoever wrote it, which for `CURRENT_TIMESTAMP` and `NOW()` is the
//! writer's session `time_zone`, by default the server's global one. A bound in UTC compared
//! with local values is hours off: ahead of them (rows of open transactions read past, lost)
//! or behind them (nothing replicates for hours). So the bound of such a table is turned into
//! the cursor's zone ([`CursorZone`]) before it is used.
//!
//! A named zone's clock goes back an hour once a year, and the hour before repeats its values.
//! The bound in local time must then be no higher than any local time still to come:
//! [`CursorZone::floors`] takes the UTC bound plus the *lowest* UTC offset the zone
//! has from then to [`DST_HORIZON_SECS`] later. Before a clock goes back, the bound holds below
//! the hour that will repeat until it has repeated; at any other time it is the local clock.

use super::config::EpochUnit;
use highwater_pipeline::civil::MICROS_PER_DAY;
use highwater_pipeline::cursor::DateTime;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::connect::query_error;
use super::decode;
use highwater_pipeline::source::SourceError;

/// How far ahead a clock change is looked for: a change that sets the clock back by up to this
/// much is seen before it happens (real ones are 30 minutes to 2 hours).
const DST_HORIZON_SECS: u32 = 7200;
/// The spacing of the offsets sampled up to the horizon; no zone changes its offset twice
/// within it.
const DST_SAMPLE_SECS: u32 = 900;

/// The zone a table's cursor values are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorZone {
    /// UTC: `TIMESTAMP` columns (read in the session's `+00:00`), or local columns of a zone
    /// that is UTC all year.
    Utc,
    /// A zone the server knows (`Europe/Berlin`, `-05:00`, `SYSTEM`): `DATETIME` and `DATE`
    /// values written in it.
    Local(String),
}

impl CursorZone {
    /// The lowest local time of `zone` from UTC instant `?` on (see the module's doc).
    /// Parameters: the instant, the zone, the instant, the zone (two bounds per statement).
    fn local_floor_sql() -> String {
        let samples: Vec<String> =
            (0..=DST_HORIZON_SECS / DST_SAMPLE_SECS).map(|k| format!("SELECT {} AS s", k * DST_SAMPLE_SECS)).collect();
        let floor = |n: usize| {
            format!(
                "MIN(CONVERT_TZ(CAST(? AS DATETIME(6)) + INTERVAL k.s SECOND, '+00:00', ?) - INTERVAL k.s SECOND) AS b{n}"
            )
        };
        format!("SELECT {}, {} FROM ({}) AS k", floor(0), floor(1), samples.join(" UNION ALL "))
    }

    /// The zone of a cursor column of `source_type`, when the source's local zone is `local`.
    pub fn of_column(source_type: &str, local: &CursorZone) -> CursorZone {
        if source_type.trim().to_ascii_lowercase().starts_with("timestamp") { CursorZone::Utc } else { local.clone() }
    }

    /// The zone's name, for `check` and messages.
    pub fn name(&self) -> &str {
        match self {
            CursorZone::Utc => "UTC",
            CursorZone::Local(zone) => zone,
        }
    }

    /// Resolves the zone of the source's `DATETIME` and `DATE` values: `configured`
    /// (`source.time_zone`), else the server's global `time_zone`. A zone the server does not
    /// know (a named zone without its zone tables loaded) is an error naming where it came from.
    pub async fn resolve(conn: &mut Conn, configured: Option<&str>) -> Result<CursorZone, SourceError> {
        let (zone, from) = match configured {
            Some(zone) => (zone.to_owned(), "source.time_zone".to_owned()),
            None => {
                let global: Option<String> = conn
                    .query_first("SELECT @@global.time_zone")
                    .await
                    .map_err(|e| query_error("the server's time_zone", e))?;
                (global.unwrap_or_else(|| "SYSTEM".into()), "the server's global time_zone".to_owned())
            }
        };
        // The offset at the first of each month of the next two years: zero throughout is UTC.
        let offsets: Vec<Option<i64>> = conn
            .exec(
                "SELECT TIMESTAMPDIFF(SECOND, d, CONVERT_TZ(d, '+00:00', ?)) FROM \
                 (SELECT CAST(DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01') AS DATETIME) + INTERVAL seq MONTH AS d \
                  FROM (SELECT 0 AS seq UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                  UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 \
                  UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12) AS m) AS months",
                (zone.as_str(),),
            )
            .await
            .map_err(|e| query_error(format!("the time zone {zone:?} ({from})"), e))?;
        if offsets.is_empty() || offsets.iter().any(Option::is_none) {
            return Err(SourceError::UnknownTimeZone { zone, from });
        }
        Ok(if offsets.iter().all(|o| *o == Some(0)) { CursorZone::Utc } else { CursorZone::Local(zone) })
    }

    /// `upper` and `clock`, instants in UTC, as the lowest local times of this zone from then
    /// on (see the module's doc). UTC values are returned as they are, without a statement.
    pub async fn floors(
        &self,
        conn: &mut Conn,
        upper: DateTime,
        clock: DateTime,
    ) -> Result<(DateTime, DateTime), SourceError> {
        let CursorZone::Local(zone) = self else { return Ok((upper, clock)) };
        let params = (decode::datetime_param(&upper), zone.as_str(), decode::datetime_param(&clock), zone.as_str());
        let what = || format!("the local time in {zone}");
        let row: Option<Row> =
            conn.exec_first(Self::local_floor_sql(), params).await.map_err(|e| query_error(what(), e))?;
        let mut row = row.ok_or_else(|| SourceError::UnknownTimeZone { zone: zone.clone(), from: what() })?;
        let mut take = |i: usize| -> Result<DateTime, SourceError> {
            let v = row.take::<Value, _>(i).unwrap_or(Value::NULL);
            decode::datetime(&v).map_err(|_| SourceError::UnknownTimeZone { zone: zone.clone(), from: what() })
        };
        Ok((take(0)?, take(1)?))
    }
}

/// A table's cursor against the server's clock: the zone its values are in, their unit, and
/// how a value maps to the instant positions keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorClock {
    zone: CursorZone,
    /// See [`cursor_step`].
    step: Option<i64>,
    /// An integer cursor counting Unix time in units of this many microseconds
    /// (`source.tables[i].cursor_unit`). Its values are UTC instants; positions keep them as
    /// the [`DateTime`] they count, and statements get them back as integers.
    epoch: Option<i64>,
}

impl CursorClock {
    /// The clock of a cursor column of `source_type`, when the source's local zone is `local`.
    pub fn of_column(source_type: &str, local: &CursorZone) -> CursorClock {
        CursorClock { zone: CursorZone::of_column(source_type, local), step: cursor_step(source_type), epoch: None }
    }

    /// The clock of an integer cursor counting Unix time in `unit`.
    pub fn epoch(unit: EpochUnit) -> CursorClock {
        let micros = unit.micros();
        CursorClock { zone: CursorZone::Utc, step: (micros > 1).then_some(micros), epoch: Some(micros) }
    }

    pub fn zone(&self) -> &CursorZone {
        &self.zone
    }

    /// The cursor's unit in microseconds, when coarser than one.
    pub fn step(&self) -> Option<i64> {
        self.step
    }

    /// Whether the cursor's values are dates or times (not an integer count of time).
    pub fn is_temporal(&self) -> bool {
        self.epoch.is_none()
    }

    /// `at` as a statement parameter compared with the cursor column: the date itself, or the
    /// count of units up to it (rounded down, so `<=` takes no value above it).
    pub fn param(&self, at: &DateTime) -> Value {
        match (self.epoch, at.unix_micros()) {
            (None, _) => decode::datetime_param(at),
            (Some(unit), Some(us)) => Value::Int(us.div_euclid(unit)),
            // A zero date is below every instant.
            (Some(_), None) => Value::Int(i64::MIN),
        }
    }

    /// A cursor value read from the column, as the position keeps it.
    pub fn value(&self, v: &Value) -> Result<DateTime, String> {
        let Some(unit) = self.epoch else { return decode::datetime(v) };
        let count: i128 = match v {
            Value::Int(n) => i128::from(*n),
            Value::UInt(n) => i128::from(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or("not an integer")?,
            other => return Err(format!("expected an integer, got {other:?}")),
        };
        let us = count * i128::from(unit);
        if !(MIN_EPOCH_MICROS..=MAX_EPOCH_MICROS).contains(&us) {
            return Err(format!(
                "{count} as Unix time in units of {unit} µs is outside 0001-01-01..9999-12-31: is its cursor_unit \
                 right? (milliseconds read as seconds are 1000 times too far)"
            ));
        }
        Ok(DateTime::from_unix_micros(us as i64))
    }

    /// A pass's bound and clock in the cursor's terms, from the UTC `upper` and `clock` (equal,
    /// or `upper` held below an open writer's start): both in the cursor's zone, and the bound
    /// below the unit a coarse cursor is still filling. A held bound (whole seconds, less the
    /// lag) already ends a second every later write is above, and is lowered only for units
    /// coarser than a second.
    pub async fn bound(
        &self,
        conn: &mut Conn,
        upper: DateTime,
        clock: DateTime,
    ) -> Result<(DateTime, DateTime), SourceError> {
        let held = upper < clock && self.step.is_none_or(|step| step <= 1_000_000);
        let (upper, clock) = self.zone.floors(conn, upper, clock).await?;
        Ok((if held { upper } else { complete_below(upper, self.step) }, clock))
    }
}

/// 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999 in microseconds since the epoch.
const MIN_EPOCH_MICROS: i128 = -62_135_596_800_000_000;
const MAX_EPOCH_MICROS: i128 = 253_402_300_799_999_999;

/// The step of a cursor column's values in microseconds, when coarser than a microsecond:
/// a day for `DATE`, a second for `DATETIME` and `TIMESTAMP`, a millisecond for `DATETIME(3)`.
fn cursor_step(source_type: &str) -> Option<i64> {
    let t = source_type.trim().to_ascii_lowercase();
    if t == "date" {
        return Some(MICROS_PER_DAY);
    }
    let rest = t.strip_prefix("datetime").or_else(|| t.strip_prefix("timestamp"))?;
    let digits: u32 = rest.strip_prefix('(').and_then(|r| r.split(')').next()).map_or(Some(0), |d| d.parse().ok())?;
    (digits < 6).then(|| 10i64.pow(6 - digits))
}

/// The highest cursor value at or below `upper` that no later write can take: a `DATETIME`
/// column stores a write at 10:00:04.9 as 10:00:04, so at 10:00:04.8 the second 10:00:04 is
/// not over, and the bound is 10:00:03.999999; a `DATE` column's bound is the end of yesterday.
fn complete_below(upper: DateTime, step: Option<i64>) -> DateTime {
    match (step, upper.unix_micros()) {
        (Some(step), Some(us)) => DateTime::from_unix_micros(us.div_euclid(step) * step - 1),
        _ => upper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime {
        s.parse().expect("datetime")
    }

    #[test]
    fn bounds_stop_below_the_unit_a_coarse_cursor_is_still_filling() {
        assert_eq!(cursor_step("datetime"), Some(1_000_000));
        assert_eq!(cursor_step("timestamp(3)"), Some(1_000));
        assert_eq!(cursor_step("DATETIME(6)"), None);
        assert_eq!(cursor_step("date"), Some(MICROS_PER_DAY));
        let now = dt("2026-11-22 10:00:04.800000");
        assert_eq!(complete_below(now, Some(1_000_000)), dt("2026-11-22 10:00:03.999999"));
        assert_eq!(complete_below(now, Some(1_000)), dt("2026-11-22 10:00:04.799999"));
        assert_eq!(complete_below(now, None), now);
        // On a unit's first microsecond, that unit has only begun.
        assert_eq!(complete_below(dt("2026-11-22 10:00:05"), Some(1_000_000)), dt("2026-11-22 10:00:04.999999"));
        // A day is over only when the next has begun.
        assert_eq!(complete_below(now, cursor_step("date")), dt("2026-11-21 23:59:59.999999"));
        assert_eq!(complete_below(dt("2026-11-22 00:00:00"), cursor_step("date")), dt("2026-11-21 23:59:59.999999"));
    }

    #[test]
    fn timestamp_cursors_are_utc_and_the_others_local() {
        let local = CursorZone::Local("Asia/Shanghai".into());
        assert_eq!(CursorZone::of_column("timestamp(6)", &local), CursorZone::Utc);
        assert_eq!(CursorZone::of_column("datetime", &local), local);
        assert_eq!(CursorZone::of_column("date", &local), local);
        assert_eq!(CursorZone::of_column("datetime(3)", &CursorZone::Utc), CursorZone::Utc);
    }

    #[test]
    fn epoch_cursors_count_utc_units_and_round_bounds_down() {
        let secs = CursorClock::epoch(EpochUnit::Seconds);
        assert_eq!(secs.zone(), &CursorZone::Utc);
        assert_eq!(secs.step(), Some(1_000_000));
        assert!(!secs.is_temporal());
        let at = dt("2026-11-22 10:00:04.800000");
        assert_eq!(secs.param(&at), Value::Int(1_795_341_604));
        assert_eq!(secs.value(&Value::UInt(1_795_341_604)), Ok(dt("2026-11-22 10:00:04")));
        assert_eq!(secs.value(&Value::Bytes(b"-1".to_vec())), Ok(dt("1969-12-31 23:59:59")));
        let ms = CursorClock::epoch(EpochUnit::Milliseconds);
        assert_eq!(ms.param(&at), Value::Int(1_795_341_604_800));
        assert_eq!(ms.value(&Value::Int(1_795_341_604_801)), Ok(dt("2026-11-22 10:00:04.801000")));
        let us = CursorClock::epoch(EpochUnit::Microseconds);
        assert_eq!(us.step(), None);
        assert_eq!(us.param(&dt("1969-12-31 23:59:59.999999")), Value::Int(-1));
        // Milliseconds read as seconds are tens of thousands of years away: refused, not wrapped.
        assert!(secs.value(&Value::Int(1_795_341_604_800)).is_err_and(|e| e.contains("cursor_unit")));
        assert!(secs.value(&Value::Int(i64::MIN)).is_err());
        assert!(secs.value(&Value::UInt(u64::MAX)).is_err());
        assert!(secs.value(&Value::Double(1.5)).is_err());
        // A unit's bound ends below the unit still filling, and rounds down to the last whole one.
        let bound = complete_below(at, secs.step());
        assert_eq!(secs.param(&bound), Value::Int(1_795_341_603));
    }

    #[test]
    fn the_local_floor_samples_the_offsets_up_to_the_horizon() {
        let sql = CursorZone::local_floor_sql();
        assert_eq!(sql.matches("UNION ALL").count() as u32, DST_HORIZON_SECS / DST_SAMPLE_SECS);
        assert!(sql.contains("SELECT 7200 AS s"), "{sql}");
        assert_eq!(sql.matches('?').count(), 4);
    }
}
