//! Arrow values back into exact MySQL literals, or into the fields of a `LOAD DATA` file.
//!
//! In statements ([`Form::Sql`]), text goes as `_utf8mb4 X'..'` and binary as `X'..'`: hex
//! needs no escaping, so no value can change a statement's meaning, and 4-byte characters
//! arrive intact. Times and dates are quoted strings the server parses exactly; decimals keep
//! every digit.
//!
//! In a `LOAD DATA` file ([`Form::Infile`]: tab-separated, `\` escapes, one row per line),
//! NULL is `\N`, text is its UTF-8 with backslash, tab, newline, carriage return and NUL
//! escaped, binary is bare hex (the statement sets the column to `UNHEX` of it), and times
//! and dates go unquoted.

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use highwater_pipeline::civil;

/// Where a value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Into a statement's text.
    Sql,
    /// Into a field of a `LOAD DATA` file.
    Infile,
}

/// Appends the literal of `column[row]` to `out`.
pub fn push(out: &mut String, column: &ArrayRef, row: usize) -> Result<(), String> {
    push_as(out, column, row, Form::Sql)
}

/// Appends `column[row]` to `out` in `form`.
pub fn push_as(out: &mut String, column: &ArrayRef, row: usize, form: Form) -> Result<(), String> {
    if column.is_null(row) {
        out.push_str(if form == Form::Sql { "NULL" } else { "\\N" });
        return Ok(());
    }
    let quote = if form == Form::Sql { "'" } else { "" };
    // Writing into a String cannot fail.
    let _ = match column.data_type() {
        DataType::Int8 => write!(out, "{}", column.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(out, "{}", column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(out, "{}", column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(out, "{}", column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write!(out, "{}", column.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write!(out, "{}", column.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write!(out, "{}", column.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write!(out, "{}", column.as_primitive::<UInt64Type>().value(row)),
        // As the f64 it is exactly: the f32's shortest text can round above FLOAT's range
        // (3.4028235e38 for FLT_MAX), which the server reads as a double and refuses.
        DataType::Float32 => write!(out, "{:?}", f64::from(column.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => write!(out, "{:?}", column.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => write!(out, "{}", u8::from(column.as_boolean().value(row))),
        DataType::Decimal128(_, _) => write!(out, "{}", column.as_primitive::<Decimal128Type>().value_as_string(row)),
        DataType::Decimal256(_, _) => write!(out, "{}", column.as_primitive::<Decimal256Type>().value_as_string(row)),
        DataType::Date32 => {
            let (y, m, d) = civil::civil_from_days(column.as_primitive::<Date32Type>().value(row));
            write!(out, "{quote}{y:04}-{m:02}-{d:02}{quote}")
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = column.as_primitive::<TimestampMicrosecondType>().value(row);
            write!(out, "{quote}{}{quote}", civil::format_micros(us))
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            let us = column.as_primitive::<DurationMicrosecondType>().value(row);
            let sign = if us < 0 { "-" } else { "" };
            let abs = us.unsigned_abs();
            let secs = abs / 1_000_000;
            let (h, m, s, us) = (secs / 3600, secs / 60 % 60, secs % 60, abs % 1_000_000);
            write!(out, "{quote}{sign}{h}:{m:02}:{s:02}.{us:06}{quote}")
        }
        DataType::Utf8 if form == Form::Infile => {
            push_escaped(out, column.as_string::<i32>().value(row));
            Ok(())
        }
        DataType::Utf8 => {
            out.push_str("_utf8mb4 ");
            push_hex(out, column.as_string::<i32>().value(row).as_bytes(), form);
            Ok(())
        }
        DataType::Binary => {
            push_hex(out, column.as_binary::<i32>().value(row), form);
            Ok(())
        }
        DataType::FixedSizeBinary(_) => {
            push_hex(out, column.as_fixed_size_binary().value(row), form);
            Ok(())
        }
        other => return Err(format!("no MySQL literal for Arrow type {other}")),
    };
    Ok(())
}

/// Whether values of this Arrow type go into a `LOAD DATA` file as hex (see [`Form::Infile`]).
pub fn is_hex_in_infile(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Binary | DataType::FixedSizeBinary(_))
}

fn push_hex(out: &mut String, bytes: &[u8], form: Form) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    if form == Form::Sql {
        out.push_str("X'");
    }
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    if form == Form::Sql {
        out.push('\'');
    }
}

/// Text for a `LOAD DATA` field: the characters that delimit or escape, escaped.
fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '\t', '\n', '\r', '\0']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => "\\0",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::Decimal256Builder;
    use arrow_array::{DurationMicrosecondArray, FixedSizeBinaryArray, Float32Array, StringArray};
    use arrow_buffer::i256;
    use std::sync::Arc;

    fn lit(column: ArrayRef) -> Vec<String> {
        (0..column.len())
            .map(|i| {
                let mut s = String::new();
                push(&mut s, &column, i).expect("renders");
                s
            })
            .collect()
    }

    #[test]
    fn text_and_binary_are_hex_so_nothing_needs_escaping() {
        assert_eq!(
            lit(Arc::new(StringArray::from(vec![Some("a'b"), None, Some("😀"), Some("")]))),
            ["_utf8mb4 X'612762'", "NULL", "_utf8mb4 X'F09F9880'", "_utf8mb4 X''"]
        );
        let ids = FixedSizeBinaryArray::try_from_iter(vec![vec![0u8, 1, 255]].into_iter()).expect("fixed");
        assert_eq!(lit(Arc::new(ids)), ["X'0001FF'"]);
    }

    #[test]
    fn infile_fields_escape_what_delimits_and_leave_the_rest() {
        let infile = |column: ArrayRef| -> Vec<String> {
            (0..column.len())
                .map(|i| {
                    let mut s = String::new();
                    push_as(&mut s, &column, i, Form::Infile).expect("renders");
                    s
                })
                .collect()
        };
        assert_eq!(
            infile(Arc::new(StringArray::from(vec![Some("a\tb\nc\\d\re\0f"), None, Some("\\N"), Some("😀 ü")]))),
            ["a\\tb\\nc\\\\d\\re\\0f", "\\N", "\\\\N", "😀 ü"]
        );
        let ids = FixedSizeBinaryArray::try_from_iter(vec![vec![0u8, 9, 255]].into_iter()).expect("fixed");
        assert_eq!(infile(Arc::new(ids)), ["0009FF"]);
        assert_eq!(infile(Arc::new(DurationMicrosecondArray::from(vec![-500_000]))), ["-0:00:00.500000"]);
    }

    #[test]
    fn times_over_a_day_and_negative() {
        assert_eq!(
            lit(Arc::new(DurationMicrosecondArray::from(vec![-3_020_399_000_000, -500_000, 1_864_264_777_000]))),
            ["'-838:59:59.000000'", "'-0:00:00.500000'", "'517:51:04.777000'"]
        );
    }

    #[test]
    fn numbers_keep_every_digit() {
        let widest =
            i256::from_string("99999999999999999999999999999999999999999999999999999999999999999").expect("fits");
        let mut b = Decimal256Builder::new().with_precision_and_scale(65, 30).expect("valid");
        b.append_value(widest);
        assert_eq!(lit(Arc::new(b.finish())), ["99999999999999999999999999999999999.999999999999999999999999999999"]);
        // Each float as the double it is, which the server rounds back to the same float.
        let floats = Float32Array::from(vec![2.5e-3f32, 1e20, f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0, 1.0e-45]);
        let texts = lit(Arc::new(floats.clone()));
        assert_eq!(texts[1], "1.0000000200408773e20");
        assert_eq!(texts[2], "3.4028234663852886e38");
        assert_eq!(texts[3], "-3.4028234663852886e38");
        for (text, want) in texts.iter().zip(floats.values()) {
            let back = text.parse::<f64>().expect("a number") as f32;
            assert_eq!(back.to_bits(), want.to_bits(), "{text}");
        }
    }
}
