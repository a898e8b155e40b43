//! Wire values into Arrow arrays, one builder per column.
//!
//! Values come from the binary protocol (`Value::Int`, `Value::Date`, ...), with text
//! (`Value::Bytes`) accepted wherever the server may send it. No value panics: a value that
//! does not fit is an error naming the column.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, DurationMicrosecondBuilder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_buffer::i256;
use highwater_pipeline::civil;
use highwater_pipeline::cursor::{DateTime, KeyValue};
use mysql_async::Value;

use super::types::Kind;

/// What pushing one value found worth counting.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Value,
    /// A zero or partial-zero date, pushed as NULL.
    ZeroDate,
}

/// Builds one column's Arrow array.
pub enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    /// BIT(2..=64): always big-endian bytes, whatever they look like (0x34 is 52, not "4").
    Bits(UInt64Builder),
    Decimal128(Decimal128Builder, u8),
    Decimal256(Decimal256Builder, u8),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(DurationMicrosecondBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    FixedBinary(FixedSizeBinaryBuilder),
}

impl ColumnBuilder {
    pub fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Int8 => Self::Int8(Int8Builder::with_capacity(capacity)),
            Kind::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            Kind::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            Kind::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            Kind::UInt8 => Self::UInt8(UInt8Builder::with_capacity(capacity)),
            Kind::UInt16 | Kind::Year => Self::UInt16(UInt16Builder::with_capacity(capacity)),
            Kind::UInt32 => Self::UInt32(UInt32Builder::with_capacity(capacity)),
            Kind::UInt64 => Self::UInt64(UInt64Builder::with_capacity(capacity)),
            Kind::Bits => Self::Bits(UInt64Builder::with_capacity(capacity)),
            Kind::Decimal128 { precision, scale } => Self::Decimal128(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
                scale as u8,
            ),
            Kind::Decimal256 { precision, scale } => Self::Decimal256(
                Decimal256Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal256Builder::with_capacity(capacity)),
                scale as u8,
            ),
            Kind::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            Kind::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            Kind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            Kind::DateTime => Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity)),
            Kind::Timestamp => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
            }
            Kind::Time => Self::Duration(DurationMicrosecondBuilder::with_capacity(capacity)),
            Kind::Text => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::FixedBinary(n) => Self::FixedBinary(FixedSizeBinaryBuilder::with_capacity(capacity, n)),
        }
    }

    /// Appends one value (`None` or `Value::NULL` for NULL).
    pub fn push(&mut self, value: Option<&Value>) -> Result<Pushed, String> {
        let v = match value {
            None | Some(Value::NULL) => {
                self.push_null();
                return Ok(Pushed::Value);
            }
            Some(v) => v,
        };
        match self {
            Self::Int8(b) => b.append_value(fit(int(v)?)?),
            Self::Int16(b) => b.append_value(fit(int(v)?)?),
            Self::Int32(b) => b.append_value(fit(int(v)?)?),
            Self::Int64(b) => b.append_value(fit(int(v)?)?),
            Self::UInt8(b) => b.append_value(fit(int(v)?)?),
            Self::UInt16(b) => b.append_value(fit(int(v)?)?),
            Self::UInt32(b) => b.append_value(fit(int(v)?)?),
            Self::UInt64(b) => b.append_value(fit(int(v)?)?),
            Self::Bits(b) => match v {
                Value::Bytes(bytes) if bytes.len() <= 8 => {
                    b.append_value(bytes.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
                }
                Value::Bytes(bytes) => return Err(format!("BIT value of {} bytes, more than 64 bits", bytes.len())),
                _ => b.append_value(fit(int(v)?)?),
            },
            Self::Decimal128(b, scale) => b.append_value(parse_decimal(text(v)?, *scale)?),
            Self::Decimal256(b, scale) => b.append_value(parse_decimal256(text(v)?, *scale)?),
            Self::Float32(b) => b.append_value(match v {
                Value::Float(f) => *f,
                Value::Double(d) => *d as f32,
                other => parse_text(other)?,
            }),
            Self::Float64(b) => b.append_value(match v {
                Value::Double(d) => *d,
                Value::Float(f) => f64::from(*f),
                other => parse_text(other)?,
            }),
            Self::Bool(b) => b.append_value(match v {
                Value::Bytes(bytes) if bytes.len() == 1 && bytes[0] <= 1 => bytes[0] == 1,
                other => int(other)? != 0,
            }),
            Self::Date(b) => match datetime(v)?.unix_micros() {
                Some(us) => b.append_value(us.div_euclid(civil::MICROS_PER_DAY) as i32),
                None => {
                    b.append_null();
                    return Ok(Pushed::ZeroDate);
                }
            },
            Self::Timestamp(b) => match datetime(v)?.unix_micros() {
                Some(us) => b.append_value(us),
                None => {
                    b.append_null();
                    return Ok(Pushed::ZeroDate);
                }
            },
            Self::Duration(b) => b.append_value(time_micros(v)?),
            Self::Text(b) => {
                let bytes = bytes(v)?;
                b.append_value(std::str::from_utf8(bytes).map_err(|e| format!("text is not UTF-8: {e}"))?)
            }
            Self::Binary(b) => b.append_value(bytes(v)?),
            Self::FixedBinary(b) => {
                let bytes = bytes(v)?;
                b.append_value(bytes).map_err(|e| format!("{} bytes do not fit: {e}", bytes.len()))?
            }
        }
        Ok(Pushed::Value)
    }

    fn push_null(&mut self) {
        match self {
            Self::Int8(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::UInt8(b) => b.append_null(),
            Self::UInt16(b) => b.append_null(),
            Self::UInt32(b) => b.append_null(),
            Self::UInt64(b) | Self::Bits(b) => b.append_null(),
            Self::Decimal128(b, _) => b.append_null(),
            Self::Decimal256(b, _) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Duration(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::FixedBinary(b) => b.append_null(),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::UInt8(b) => Arc::new(b.finish()),
            Self::UInt16(b) => Arc::new(b.finish()),
            Self::UInt32(b) => Arc::new(b.finish()),
            Self::UInt64(b) | Self::Bits(b) => Arc::new(b.finish()),
            Self::Decimal128(b, _) => Arc::new(b.finish()),
            Self::Decimal256(b, _) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Duration(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::FixedBinary(b) => Arc::new(b.finish()),
        }
    }
}

/// A key column's value as a position component.
pub fn key_value(kind: Kind, v: &Value) -> Result<KeyValue, String> {
    Ok(match kind {
        Kind::Int8 | Kind::Int16 | Kind::Int32 | Kind::Int64 => KeyValue::Int(fit(int(v)?)?),
        Kind::UInt8 | Kind::UInt16 | Kind::UInt32 | Kind::UInt64 | Kind::Year => KeyValue::UInt(fit(int(v)?)?),
        Kind::Bits | Kind::Bool => KeyValue::UInt(match v {
            Value::Bytes(b) if b.len() <= 8 => b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
            other => fit(int(other)?)?,
        }),
        Kind::Decimal128 { .. } | Kind::Decimal256 { .. } => KeyValue::Decimal(text(v)?.to_owned()),
        Kind::Date | Kind::DateTime | Kind::Timestamp => KeyValue::DateTime(datetime(v)?),
        Kind::Time => KeyValue::Time(time_micros(v)?),
        Kind::Text => KeyValue::Text(text(v)?.to_owned()),
        Kind::Binary | Kind::FixedBinary(_) => KeyValue::Bytes(bytes(v)?.to_vec()),
        Kind::Float32 | Kind::Float64 => {
            return Err("a FLOAT or DOUBLE key cannot be a position".into());
        }
    })
}

/// A position component as a statement parameter.
pub fn key_param(v: &KeyValue) -> Value {
    match v {
        KeyValue::Int(i) => Value::Int(*i),
        KeyValue::UInt(u) => Value::UInt(*u),
        KeyValue::Text(s) | KeyValue::Decimal(s) => Value::Bytes(s.as_bytes().to_vec()),
        KeyValue::Bytes(b) => Value::Bytes(b.clone()),
        KeyValue::DateTime(d) => datetime_param(d),
        KeyValue::Time(us) => {
            let abs = us.unsigned_abs();
            let secs = abs / 1_000_000;
            Value::Time(
                *us < 0,
                (secs / 86_400) as u32,
                (secs / 3600 % 24) as u8,
                (secs / 60 % 60) as u8,
                (secs % 60) as u8,
                (abs % 1_000_000) as u32,
            )
        }
    }
}

pub fn datetime_param(d: &DateTime) -> Value {
    Value::Date(d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros)
}

/// A DATE/DATETIME/TIMESTAMP value, zero dates included.
pub fn datetime(v: &Value) -> Result<DateTime, String> {
    match v {
        Value::Date(year, month, day, hour, minute, second, micros) => Ok(DateTime {
            year: *year,
            month: *month,
            day: *day,
            hour: *hour,
            minute: *minute,
            second: *second,
            micros: *micros,
        }),
        Value::Bytes(b) => {
            let s = std::str::from_utf8(b).map_err(|_| "a date that is not text".to_owned())?;
            let full = if s.len() == 10 { format!("{s} 00:00:00") } else { s.to_owned() };
            full.parse().map_err(|e: highwater_pipeline::cursor::ParseDateTimeError| e.to_string())
        }
        other => Err(format!("expected a date, got {other:?}")),
    }
}

fn time_micros(v: &Value) -> Result<i64, String> {
    match v {
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let secs =
                i64::from(*days) * 86_400 + i64::from(*hours) * 3600 + i64::from(*minutes) * 60 + i64::from(*seconds);
            let us = secs * 1_000_000 + i64::from(*micros);
            Ok(if *negative { -us } else { us })
        }
        Value::Bytes(b) => parse_time_text(std::str::from_utf8(b).map_err(|_| "a time that is not text".to_owned())?),
        other => Err(format!("expected a time, got {other:?}")),
    }
}

/// `-838:59:59.999999` into signed microseconds.
fn parse_time_text(s: &str) -> Result<i64, String> {
    let bad = || format!("not a time: {s:?}");
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut parts = hms.split(':');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    let (h, m, sec) = (next()?, next()?, next()?);
    let micros = if frac.is_empty() {
        0
    } else {
        let digits: i64 = frac.parse().map_err(|_| bad())?;
        digits * 10i64.pow(6u32.saturating_sub(frac.len() as u32))
    };
    let us = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    Ok(if negative { -us } else { us })
}

fn int(v: &Value) -> Result<i128, String> {
    match v {
        Value::Int(i) => Ok(i128::from(*i)),
        Value::UInt(u) => Ok(i128::from(*u)),
        other => parse_text(other),
    }
}

fn fit<T: TryFrom<i128>>(v: i128) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("{v} is out of the column's range"))
}

fn bytes(v: &Value) -> Result<&[u8], String> {
    match v {
        Value::Bytes(b) => Ok(b),
        other => Err(format!("expected bytes, got {other:?}")),
    }
}

fn text(v: &Value) -> Result<&str, String> {
    std::str::from_utf8(bytes(v)?).map_err(|e| format!("text is not UTF-8: {e}"))
}

fn parse_text<T: std::str::FromStr>(v: &Value) -> Result<T, String> {
    let s = text(v)?;
    s.trim().parse().map_err(|_| format!("cannot read {s:?} as a number"))
}

/// `-123.45` with scale 4 into `-1234500`.
fn decimal_digits(s: &str, scale: u8) -> Result<(bool, String), String> {
    let bad = || format!("not a decimal: {s:?}");
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() > usize::from(scale)
        || !int_part.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int_part.is_empty() && frac.is_empty()
    {
        return Err(bad());
    }
    let mut digits = String::with_capacity(int_part.len() + usize::from(scale));
    digits.push_str(int_part);
    digits.push_str(frac);
    digits.extend(std::iter::repeat_n('0', usize::from(scale) - frac.len()));
    Ok((negative, digits))
}

pub fn parse_decimal(s: &str, scale: u8) -> Result<i128, String> {
    let (negative, digits) = decimal_digits(s, scale)?;
    let v: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| format!("decimal too wide: {s:?}"))? };
    Ok(if negative { -v } else { v })
}

pub fn parse_decimal256(s: &str, scale: u8) -> Result<i256, String> {
    let (negative, digits) = decimal_digits(s, scale)?;
    let ten = i256::from_i128(10);
    let mut v = i256::ZERO;
    for d in digits.bytes() {
        v = v
            .checked_mul(ten)
            .and_then(|x| x.checked_add(i256::from_i128(i128::from(d - b'0'))))
            .ok_or_else(|| format!("decimal too wide: {s:?}"))?;
    }
    Ok(if negative { v.wrapping_neg() } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Decimal256Array, DurationMicrosecondArray, TimestampMicrosecondArray};

    #[test]
    fn text_must_be_utf8() {
        let mut b = ColumnBuilder::new(Kind::Text, 2);
        assert_eq!(b.push(Some(&Value::Bytes("ünïcödé ✓ 😀".into()))), Ok(Pushed::Value));
        let err = b.push(Some(&Value::Bytes(b"caf\xe9".to_vec()))).expect_err("latin1 is not UTF-8");
        assert!(err.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("-2.111", 3), Ok(-2111));
        assert_eq!(parse_decimal("12345.67", 2), Ok(1_234_567));
        assert_eq!(parse_decimal("5", 4), Ok(50_000));
        assert!(parse_decimal("1.2.3", 4).is_err());
        assert!(parse_decimal("1e5", 4).is_err());
        let widest = "99999999999999999999999999999999999.999999999999999999999999999999";
        let v = parse_decimal256(widest, 30).expect("fits 256 bits");
        let mut b = ColumnBuilder::new(Kind::Decimal256 { precision: 65, scale: 30 }, 1);
        b.push(Some(&Value::Bytes(widest.into()))).expect("decodes");
        let arr = b.finish();
        let arr = arr.as_any().downcast_ref::<Decimal256Array>().expect("decimal256");
        assert_eq!(arr.value(0), v);
        assert_eq!(arr.value_as_string(0), widest);
        assert_eq!(parse_decimal256("-0.000000000000000000000000000001", 30), Ok(i256::from_i128(-1)));
    }

    #[test]
    fn zero_dates_become_null_and_are_reported() {
        let mut b = ColumnBuilder::new(Kind::DateTime, 3);
        assert_eq!(b.push(Some(&Value::Date(0, 0, 0, 0, 0, 0, 0))), Ok(Pushed::ZeroDate));
        assert_eq!(b.push(Some(&Value::Date(2020, 2, 0, 10, 0, 0, 0))), Ok(Pushed::ZeroDate));
        assert_eq!(b.push(Some(&Value::Date(1970, 1, 1, 0, 0, 0, 1))), Ok(Pushed::Value));
        let arr = b.finish();
        let arr = arr.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("timestamps");
        assert_eq!((arr.null_count(), arr.value(2)), (2, 1));
    }

    #[test]
    fn times_beyond_a_day_and_negative() {
        let mut b = ColumnBuilder::new(Kind::Time, 3);
        b.push(Some(&Value::Time(true, 34, 22, 59, 59, 999_999))).expect("decodes");
        b.push(Some(&Value::Time(true, 0, 0, 0, 0, 500_000))).expect("decodes");
        b.push(Some(&Value::Bytes(b"517:51:04.777".to_vec()))).expect("decodes");
        let arr = b.finish();
        let arr = arr.as_any().downcast_ref::<DurationMicrosecondArray>().expect("durations");
        assert_eq!(arr.value(0), -3_020_399_999_999);
        assert_eq!(arr.value(1), -500_000);
        assert_eq!(arr.value(2), 1_864_264_777_000);
    }

    #[test]
    fn bits_integers_and_bad_values() {
        let mut b = ColumnBuilder::new(Kind::Bits, 2);
        b.push(Some(&Value::Bytes(vec![0xff; 8]))).expect("decodes");
        b.push(Some(&Value::Bytes(vec![0x01, 0x6e, 0x0d, 0xdb]))).expect("decodes");
        // Bytes that happen to be ASCII digits are still bits: 0x34 is 52, 0x3130 is 12592.
        b.push(Some(&Value::Bytes(vec![0x34]))).expect("decodes");
        b.push(Some(&Value::Bytes(b"10".to_vec()))).expect("decodes");
        let bits = b.finish();
        let bits = bits.as_any().downcast_ref::<arrow_array::UInt64Array>().expect("u64");
        assert_eq!(bits.values().to_vec(), [u64::MAX, 0x016e_0ddb, 52, 0x3130]);
        let mut i = ColumnBuilder::new(Kind::Int8, 1);
        assert!(i.push(Some(&Value::Int(300))).is_err(), "out of range is an error, not a panic");
        let mut t = ColumnBuilder::new(Kind::Text, 1);
        assert!(t.push(Some(&Value::Bytes(vec![0xff]))).is_err());
        let mut f = ColumnBuilder::new(Kind::FixedBinary(8), 1);
        assert!(f.push(Some(&Value::Bytes(vec![1]))).is_err());
    }

    #[test]
    fn key_values_round_trip_as_parameters() {
        let time = key_value(Kind::Time, &Value::Time(true, 1, 2, 3, 4, 5)).expect("time key");
        assert_eq!(key_param(&time), Value::Time(true, 1, 2, 3, 4, 5));
        let zero = key_value(Kind::DateTime, &Value::Date(0, 0, 0, 0, 0, 0, 0)).expect("zero date key");
        assert_eq!(key_param(&zero), Value::Date(0, 0, 0, 0, 0, 0, 0));
        assert!(key_value(Kind::Float64, &Value::Double(1.0)).is_err());
    }
}
