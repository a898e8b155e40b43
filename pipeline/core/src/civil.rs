//! Proleptic Gregorian calendar arithmetic (Howard Hinnant's `days_from_civil` algorithms).
//!
//! Arrow stores dates as days and timestamps as microseconds since 1970-01-01; MySQL sends
//! `(year, month, day, ...)`. These conversions are exact for years 0..=9999, the MySQL range.

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a valid calendar date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date `(year, month, day)` of a count of days since 1970-01-01.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

/// Whether `(year, month, day)` is a real date (MySQL also stores zero and partial-zero ones).
pub fn is_valid_date(year: i32, month: u32, day: u32) -> bool {
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days_in_month
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn format_micros(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days as i32);
    let secs = in_day / 1_000_000;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}", secs / 3600, secs / 60 % 60, secs % 60, in_day % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn round_trips_every_day_of_the_mysql_range() {
        for days in days_from_civil(0, 1, 1)..=days_from_civil(9999, 12, 31) {
            let (y, m, d) = civil_from_days(days);
            assert!(is_valid_date(y, m, d), "{y}-{m}-{d}");
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn validity() {
        assert!(is_valid_date(2024, 2, 29));
        assert!(!is_valid_date(2023, 2, 29));
        assert!(!is_valid_date(2020, 0, 15));
        assert!(!is_valid_date(2020, 2, 0));
        assert!(!is_valid_date(0, 0, 0));
    }

    #[test]
    fn formats_before_and_after_the_epoch() {
        assert_eq!(format_micros(0), "1970-01-01 00:00:00.000000");
        assert_eq!(format_micros(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(format_micros(2_147_483_647_999_999), "2038-01-19 03:14:07.999999");
    }
}
