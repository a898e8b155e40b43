//! SQLite values into Arrow columns, each value checked against its column's kind.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int8Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use highwater_pipeline::civil::MICROS_PER_DAY;
use highwater_pipeline::cursor::KeyValue;
use rusqlite::types::{Value, ValueRef};

use super::clock::{TextForm, class};
use super::types::Kind;

/// One column being filled.
pub enum Column {
    Bool(Int8Builder),
    Int(Int64Builder),
    Real(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Date(Date32Builder),
    DateTime(TimestampMicrosecondBuilder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    /// Any class, as text (`on_type_mismatch = "text"`).
    AsText(StringBuilder),
}

impl Column {
    pub fn new(kind: Kind, as_text: bool) -> Column {
        if as_text {
            return Column::AsText(StringBuilder::new());
        }
        match kind {
            Kind::Bool => Column::Bool(Int8Builder::new()),
            Kind::Int => Column::Int(Int64Builder::new()),
            Kind::Real => Column::Real(Float64Builder::new()),
            Kind::Decimal { precision, scale } => Column::Decimal(
                Decimal128Builder::new().with_data_type(arrow_schema::DataType::Decimal128(precision, scale)),
                precision,
                scale,
            ),
            Kind::Date => Column::Date(Date32Builder::new()),
            Kind::DateTime => Column::DateTime(TimestampMicrosecondBuilder::new()),
            Kind::Text => Column::Text(StringBuilder::new()),
            Kind::Blob => Column::Blob(BinaryBuilder::new()),
        }
    }

    /// Appends `v`, or says why it does not fit (the caller names table, column and key).
    pub fn push(&mut self, v: ValueRef<'_>) -> Result<(), String> {
        let misfit = |what: &str| Err(format!("a {} value does not fit {what}", class(v)));
        match (self, v) {
            (Column::Bool(b), ValueRef::Null) => b.append_null(),
            (Column::Int(b), ValueRef::Null) => b.append_null(),
            (Column::Real(b), ValueRef::Null) => b.append_null(),
            (Column::Decimal(b, ..), ValueRef::Null) => b.append_null(),
            (Column::Date(b), ValueRef::Null) => b.append_null(),
            (Column::DateTime(b), ValueRef::Null) => b.append_null(),
            (Column::Text(b) | Column::AsText(b), ValueRef::Null) => b.append_null(),
            (Column::Blob(b), ValueRef::Null) => b.append_null(),
            (Column::Bool(b), ValueRef::Integer(n)) => match i8::try_from(n) {
                Ok(n) => b.append_value(n),
                Err(_) => return Err(format!("{n} is not a boolean")),
            },
            (Column::Int(b), ValueRef::Integer(n)) => b.append_value(n),
            (Column::Real(b), ValueRef::Real(x)) => b.append_value(x),
            (Column::Real(b), ValueRef::Integer(n)) if exact_f64(n) => b.append_value(n as f64),
            (Column::Real(_), ValueRef::Integer(n)) => return Err(format!("{n} has no exact DOUBLE")),
            (Column::Decimal(b, p, s), ValueRef::Integer(_) | ValueRef::Real(_) | ValueRef::Text(_)) => {
                let text = number_text(v).ok_or_else(|| format!("a {} value is not a number", class(v)))?;
                let value = scaled(&text, *p, *s);
                b.append_value(
                    value.ok_or_else(|| format!("a {} value ({text}) does not fit decimal({p},{s})", class(v)))?,
                )
            }
            (Column::Date(b), ValueRef::Text(t)) => match text_date(t) {
                Some((micros, form)) if form.date_only => b.append_value(micros.div_euclid(MICROS_PER_DAY) as i32),
                _ => return misfit("a DATE (YYYY-MM-DD)"),
            },
            (Column::DateTime(b), ValueRef::Text(t)) => match text_date(t) {
                Some((micros, _)) => b.append_value(micros),
                None => return misfit("a DATETIME (ISO 8601 text)"),
            },
            (Column::Text(b), ValueRef::Text(t)) => b.append_value(utf8(t)?),
            (Column::Text(b), ValueRef::Integer(_) | ValueRef::Real(_)) => b.append_value(as_text(v)),
            (Column::Text(b), ValueRef::Blob(t)) => b.append_value(utf8(t)?),
            (Column::Blob(b), ValueRef::Blob(t) | ValueRef::Text(t)) => b.append_value(t),
            (Column::AsText(b), v) => b.append_value(as_text(v)),
            (Column::Bool(_), _) => return misfit("a BOOLEAN"),
            (Column::Int(_), _) => return misfit("an INTEGER"),
            (Column::Real(_), _) => return misfit("a REAL"),
            (Column::Decimal(..), _) => return misfit("a DECIMAL"),
            (Column::Date(_), _) => return misfit("a DATE"),
            (Column::DateTime(_), _) => return misfit("a DATETIME"),
            (Column::Blob(_), _) => return misfit("a BLOB"),
        }
        Ok(())
    }

    pub fn finish(self) -> ArrayRef {
        match self {
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Real(mut b) => Arc::new(b.finish()),
            Column::Decimal(mut b, ..) => Arc::new(b.finish()),
            Column::Date(mut b) => Arc::new(b.finish()),
            Column::DateTime(mut b) => Arc::new(b.finish()),
            Column::Text(mut b) | Column::AsText(mut b) => Arc::new(b.finish()),
            Column::Blob(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A key column's value as positions carry it: the stored value itself, so that the next read
/// compares it exactly as SQLite does.
pub fn key_value(v: ValueRef<'_>) -> Result<KeyValue, String> {
    match v {
        ValueRef::Integer(n) => Ok(KeyValue::Int(n)),
        ValueRef::Text(t) => Ok(KeyValue::Text(utf8(t)?.to_owned())),
        ValueRef::Blob(b) => Ok(KeyValue::Bytes(b.to_vec())),
        ValueRef::Real(_) | ValueRef::Null => Err(format!("a key holds a {} value", class(v))),
    }
}

/// The SQL parameter for a key value [`key_value`] made.
pub fn key_param(k: &KeyValue) -> Value {
    match k {
        KeyValue::Int(n) => Value::Integer(*n),
        KeyValue::UInt(n) => Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX)),
        KeyValue::Text(s) | KeyValue::Decimal(s) => Value::Text(s.clone()),
        KeyValue::Bytes(b) => Value::Blob(b.clone()),
        KeyValue::DateTime(d) => Value::Text(d.to_string()),
        KeyValue::Time(t) => Value::Integer(*t),
    }
}

fn utf8(t: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(t).map_err(|_| "text that is not UTF-8".to_owned())
}

/// Microseconds since 1970 of ISO 8601 text, and its form.
fn text_date(t: &[u8]) -> Option<(i64, TextForm)> {
    let (dt, form) = TextForm::parse(std::str::from_utf8(t).ok()?)?;
    Some((dt.unix_micros()?, form))
}

/// Whether `n` converts to f64 and back unchanged.
fn exact_f64(n: i64) -> bool {
    const LIMIT: i64 = 1 << 53;
    (-LIMIT..=LIMIT).contains(&n) || (n as f64) as i128 == i128::from(n)
}

/// Any value as text: numbers as SQLite prints them, text itself, blobs as UTF-8 or `x'hex'`.
fn as_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.1}"),
        ValueRef::Real(x) => format!("{x}"),
        ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
            Ok(s) => s.to_owned(),
            Err(_) => format!("x'{}'", t.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        },
    }
}

/// A number's exact decimal text: integers and text as they are, reals by their shortest
/// round-trip form.
fn number_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) if x.is_finite() => Some(format!("{x}")),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(|s| s.trim().to_owned()),
        _ => None,
    }
}

/// `text` as an integer scaled by `10^scale`, when it has at most `scale` decimals and
/// `precision` digits.
fn scaled(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    let scale = scale as usize;
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        || fraction.len() > scale
    {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() + scale > usize::from(precision) {
        return None;
    }
    let padded = format!("{whole}{fraction:0<scale$}");
    let value: i128 = if padded.is_empty() { 0 } else { padded.parse().ok()? };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Float64Type, TimestampMicrosecondType};

    #[test]
    fn decimals_take_integers_reals_and_numeric_text_and_refuse_what_they_would_round() {
        assert_eq!(scaled("12.5", 10, 2), Some(1250));
        assert_eq!(scaled("-0.01", 10, 2), Some(-1));
        assert_eq!(scaled("7", 3, 0), Some(7));
        assert_eq!(scaled("12.50", 4, 2), Some(1250));
        assert_eq!(scaled("1.005", 10, 2), None);
        assert_eq!(scaled("123", 4, 2), None);
        assert_eq!(scaled("abc", 10, 2), None);
        let mut c = Column::new(Kind::Decimal { precision: 10, scale: 2 }, false);
        for v in [ValueRef::Integer(3), ValueRef::Real(1.25), ValueRef::Text(b"9.9"), ValueRef::Null] {
            c.push(v).expect("fits");
        }
        assert!(c.push(ValueRef::Text(b"n/a")).expect_err("not a number").contains("text"));
        let a = c.finish();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!((a.value(0), a.value(1), a.value(2), a.is_null(3)), (300, 125, 990, true));
    }

    #[test]
    fn a_value_of_another_class_is_refused_with_its_class_and_text_mode_takes_it() {
        let mut int = Column::new(Kind::Int, false);
        assert_eq!(int.push(ValueRef::Text(b"12a")), Err("a text value does not fit an INTEGER".into()));
        assert_eq!(int.push(ValueRef::Real(1.5)), Err("a real value does not fit an INTEGER".into()));
        let mut real = Column::new(Kind::Real, false);
        real.push(ValueRef::Integer(1 << 53)).expect("exact");
        assert!(real.push(ValueRef::Integer((1 << 53) + 1)).is_err());
        assert_eq!(real.finish().as_primitive::<Float64Type>().value(0), 9_007_199_254_740_992.0);
        let mut text = Column::new(Kind::Int, true);
        for v in [ValueRef::Text(b"12a"), ValueRef::Integer(7), ValueRef::Real(2.0), ValueRef::Blob(&[0xff, 0])] {
            text.push(v).expect("any class as text");
        }
        let a = text.finish();
        let a = a.as_string::<i32>();
        assert_eq!((a.value(0), a.value(1), a.value(2), a.value(3)), ("12a", "7", "2.0", "x'ff00'"));
    }

    #[test]
    fn dates_and_datetimes_read_iso_text_in_any_form_and_nothing_else() {
        let mut d = Column::new(Kind::DateTime, false);
        d.push(ValueRef::Text(b"2026-12-05T03:04:05.5Z")).expect("iso");
        d.push(ValueRef::Text(b"2026-12-05")).expect("a date is midnight");
        assert!(d.push(ValueRef::Integer(1_700_000_000)).expect_err("a number").contains("integer"));
        assert!(d.push(ValueRef::Text(b"yesterday")).is_err());
        let a = d.finish();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0) % 86_400_000_000, (3 * 3600 + 4 * 60 + 5) * 1_000_000 + 500_000);
        let mut date = Column::new(Kind::Date, false);
        assert!(date.push(ValueRef::Text(b"2026-12-05 00:00:00")).is_err());
        date.push(ValueRef::Text(b"1970-01-02")).expect("date");
    }

    #[test]
    fn keys_round_trip_as_stored() {
        for v in [ValueRef::Integer(-3), ValueRef::Text(b"k\xc3\xa9"), ValueRef::Blob(&[0, 1])] {
            let k = key_value(v).expect("key");
            assert_eq!(key_param(&k), Value::from(v));
        }
        assert!(key_value(ValueRef::Real(1.5)).is_err());
    }
}
