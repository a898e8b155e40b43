//! One JSON document per row, in an envelope after Debezium's, so that consumers other than
//! highwater can read the topics:
//!
//! ```json
//! {"op": "u", "before": null, "after": {"id": 4711, "amount": "12.50", ...},
//!  "source": {"connector": "highwater", "pipeline": "shop", "db": "shop", "table": "orders",
//!             "cursor_column": "update_time", "cursor": "2026-11-21T10:00:00.123456"},
//!  "ts_ms": 1795000000000}
//! ```
//!
//! `op` is `u` (insert or update: polling cannot tell them apart) or `d` (the row is in
//! `before`, `after` is null). Values keep every bit: integers up to 32 bits unsigned and 64
//! bits signed as JSON numbers, `BIGINT UNSIGNED` and decimals as strings, binary as base64,
//! DATE as `YYYY-MM-DD`, DATETIME as `YYYY-MM-DDTHH:MM:SS.ffffff`, TIMESTAMP the same with `Z`,
//! TIME as an ISO 8601 duration (`-PT838H59M59.000000S`), NULL (and zero dates) as null.
//! The message key is the primary key as a JSON object, `{"id": 4711}`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    DurationMicrosecondArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_buffer::i256;
use arrow_schema::DataType;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use highwater_pipeline::batch::{ChangeBatch, Op};
use highwater_pipeline::civil;
use highwater_pipeline::cursor::DateTime;
use highwater_pipeline::schema::TableSchema;

/// One row as a Kafka message: key and value.
pub struct RowMessage {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Every row of `batch` as a message; `ts_ms` is the time the rows were read.
pub fn encode(batch: &ChangeBatch, pipeline: &str, ts_ms: i64) -> Vec<RowMessage> {
    let t = &batch.table;
    let columns = batch.rows.columns();
    (0..batch.num_rows())
        .map(|r| {
            let row: Map<String, Value> =
                t.columns.iter().zip(columns).map(|(c, a)| (c.name.clone(), value(a.as_ref(), r))).collect();
            let key: Map<String, Value> = t.key_columns().map(|c| (c.name.clone(), row[&c.name].clone())).collect();
            let cursor = &t.cursor_column().name;
            let cursor_value = row[cursor].clone();
            let (op, before, after) = match batch.ops[r] {
                Op::Upsert => ("u", Value::Null, Value::Object(row)),
                Op::Delete => ("d", Value::Object(row), Value::Null),
            };
            let envelope = json!({
                "op": op,
                "before": before,
                "after": after,
                "source": {
                    "connector": "highwater",
                    "pipeline": pipeline,
                    "db": t.id.database,
                    "table": t.id.table,
                    "cursor_column": cursor,
                    "cursor": cursor_value,
                },
                "ts_ms": ts_ms,
            });
            RowMessage { key: Value::Object(key).to_string().into_bytes(), value: envelope.to_string().into_bytes() }
        })
        .collect()
}

/// Rows written by [`encode`] back into an Arrow batch of `table` and their operations.
pub fn decode(table: &Arc<TableSchema>, values: &[&[u8]]) -> Result<(RecordBatch, Vec<Op>), String> {
    let mut ops = Vec::with_capacity(values.len());
    let mut rows = Vec::with_capacity(values.len());
    for v in values {
        let mut doc: Value =
            serde_json::from_slice(v).map_err(|e| format!("{}: not a JSON document: {e}", table.id))?;
        let (op, field) = match doc.get("op").and_then(Value::as_str) {
            Some("d") => (Op::Delete, "before"),
            Some(_) => (Op::Upsert, "after"),
            None => return Err(format!("{}: a message without \"op\"", table.id)),
        };
        match doc.get_mut(field).map(Value::take) {
            Some(Value::Object(row)) => rows.push(row),
            _ => return Err(format!("{}: a message without \"{field}\"", table.id)),
        }
        ops.push(op);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        let cells: Vec<&Value> = rows.iter().map(|r| r.get(&c.name).unwrap_or(&Value::Null)).collect();
        columns.push(column(&c.data_type, &cells).map_err(|e| format!("{} column {}: {e}", table.id, c.name))?);
    }
    let batch = RecordBatch::try_new(table.arrow.clone(), columns).map_err(|e| format!("{}: {e}", table.id))?;
    Ok((batch, ops))
}

/// The JSON form of one cell.
fn value(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Int8 => json!(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => json!(a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => json!(a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => json!(a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => json!(a.as_primitive::<UInt64Type>().value(i).to_string()),
        DataType::Float32 => json!(a.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => json!(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, _) => json!(a.as_primitive::<Decimal128Type>().value_as_string(i)),
        DataType::Decimal256(_, _) => json!(a.as_primitive::<Decimal256Type>().value_as_string(i)),
        DataType::Boolean => json!(a.as_boolean().value(i)),
        DataType::Date32 => {
            let (y, m, d) = civil::civil_from_days(a.as_primitive::<Date32Type>().value(i));
            json!(format!("{y:04}-{m:02}-{d:02}"))
        }
        DataType::Timestamp(_, tz) => {
            let t = DateTime::from_unix_micros(a.as_primitive::<TimestampMicrosecondType>().value(i));
            let zone = if tz.is_some() { "Z" } else { "" };
            json!(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{zone}",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
            ))
        }
        DataType::Duration(_) => json!(iso_duration(a.as_primitive::<DurationMicrosecondType>().value(i))),
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::Binary => json!(BASE64.encode(a.as_binary::<i32>().value(i))),
        DataType::FixedSizeBinary(_) => json!(BASE64.encode(a.as_fixed_size_binary().value(i))),
        // The source produces none of the other types.
        other => json!(format!("unsupported type {other}")),
    }
}

/// `-PT838H59M59.000000S`.
fn iso_duration(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let abs = us.unsigned_abs();
    let secs = abs / 1_000_000;
    format!("{sign}PT{}H{}M{}.{:06}S", secs / 3600, secs / 60 % 60, secs % 60, abs % 1_000_000)
}

fn parse_iso_duration(s: &str) -> Option<i64> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let rest = rest.strip_prefix("PT")?.strip_suffix('S')?;
    let (h, rest) = rest.split_once('H')?;
    let (m, sec) = rest.split_once('M')?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, "0"));
    let frac: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let us =
        (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60 + whole.parse::<i64>().ok()?) * 1_000_000 + frac;
    Some(if negative { -us } else { us })
}

/// `YYYY-MM-DD[THH:MM:SS[.ffffff]][Z]` as microseconds since the epoch (or days, for a date).
fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.strip_suffix('Z').unwrap_or(s).replacen('T', " ", 1);
    if s.len() == 10 { format!("{s} 00:00:00").parse().ok() } else { s.parse().ok() }
}

/// Decimal text `-123.45` as the unscaled integer at `scale`.
fn parse_decimal(s: &str, scale: i8) -> Option<String> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale || !whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let unscaled = format!("{}{whole}{frac:0<scale$}", if negative { "-" } else { "" });
    Some(unscaled)
}

fn column(dt: &DataType, cells: &[&Value]) -> Result<ArrayRef, String> {
    fn each<T>(cells: &[&Value], f: impl Fn(&Value) -> Option<T>) -> Result<Vec<Option<T>>, String> {
        cells
            .iter()
            .map(|v| match v {
                Value::Null => Ok(None),
                v => f(v).map(Some).ok_or_else(|| format!("cannot read {v}")),
            })
            .collect()
    }
    let int = |v: &Value| v.as_i64();
    let uint = |v: &Value| v.as_u64();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let bytes = |v: &Value| v.as_str().and_then(|s| BASE64.decode(s).ok());
    Ok(match dt {
        DataType::Int8 => Arc::new(Int8Array::from(each(cells, |v| int(v)?.try_into().ok())?)),
        DataType::Int16 => Arc::new(Int16Array::from(each(cells, |v| int(v)?.try_into().ok())?)),
        DataType::Int32 => Arc::new(Int32Array::from(each(cells, |v| int(v)?.try_into().ok())?)),
        DataType::Int64 => Arc::new(Int64Array::from(each(cells, int)?)),
        DataType::UInt8 => Arc::new(UInt8Array::from(each(cells, |v| uint(v)?.try_into().ok())?)),
        DataType::UInt16 => Arc::new(UInt16Array::from(each(cells, |v| uint(v)?.try_into().ok())?)),
        DataType::UInt32 => Arc::new(UInt32Array::from(each(cells, |v| uint(v)?.try_into().ok())?)),
        DataType::UInt64 => Arc::new(UInt64Array::from(each(cells, |v| v.as_str()?.parse().ok())?)),
        DataType::Float32 => Arc::new(Float32Array::from(each(cells, |v| v.as_f64().map(|f| f as f32))?)),
        DataType::Float64 => Arc::new(Float64Array::from(each(cells, Value::as_f64)?)),
        DataType::Decimal128(p, s) => {
            let values = each(cells, |v| parse_decimal(v.as_str()?, *s)?.parse::<i128>().ok())?;
            Arc::new(Decimal128Array::from(values).with_precision_and_scale(*p, *s).map_err(|e| e.to_string())?)
        }
        DataType::Decimal256(p, s) => {
            let values = each(cells, |v| i256::from_string(&parse_decimal(v.as_str()?, *s)?))?;
            Arc::new(Decimal256Array::from(values).with_precision_and_scale(*p, *s).map_err(|e| e.to_string())?)
        }
        DataType::Boolean => Arc::new(BooleanArray::from(each(cells, Value::as_bool)?)),
        DataType::Date32 => Arc::new(Date32Array::from(each(cells, |v| {
            let d = parse_datetime(v.as_str()?)?;
            Some(civil::days_from_civil(i32::from(d.year), u32::from(d.month), u32::from(d.day)))
        })?)),
        DataType::Timestamp(_, tz) => {
            let array = TimestampMicrosecondArray::from(each(cells, |v| parse_datetime(v.as_str()?)?.unix_micros())?);
            Arc::new(array.with_timezone_opt(tz.clone()))
        }
        DataType::Duration(_) => {
            Arc::new(DurationMicrosecondArray::from(each(cells, |v| parse_iso_duration(v.as_str()?))?))
        }
        DataType::Utf8 => Arc::new(StringArray::from(each(cells, text)?)),
        DataType::Binary => Arc::new(BinaryArray::from_iter(each(cells, bytes)?)),
        DataType::FixedSizeBinary(n) => {
            let values = each(cells, bytes)?;
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(values.into_iter(), *n)
                    .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("type {other} cannot be read from JSON")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use highwater_pipeline::batch::BatchStats;
    use highwater_pipeline::cursor::Position;
    use highwater_pipeline::schema::{ColumnSchema, TableId};

    fn col(name: &str, data_type: DataType) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            source_type: String::new(),
            charset: None,
            collation: None,
            source_nullable: true,
            data_type,
            nullable: true,
            default: None,
            default_computed: false,
        }
    }

    /// A table of every type the source produces, and two rows with extreme values and NULLs.
    fn every_type() -> ChangeBatch {
        let columns = vec![
            col("id", DataType::UInt64),
            col("i8", DataType::Int8),
            col("i64", DataType::Int64),
            col("u32", DataType::UInt32),
            col("f64", DataType::Float64),
            col("d", DataType::Decimal128(12, 2)),
            col("big", DataType::Decimal256(65, 30)),
            col("b", DataType::Boolean),
            col("day", DataType::Date32),
            col("dt", DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)),
            col("ts", DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))),
            col("t", DataType::Duration(arrow_schema::TimeUnit::Microsecond)),
            col("s", DataType::Utf8),
            col("bin", DataType::Binary),
            col("fix", DataType::FixedSizeBinary(3)),
        ];
        let table =
            Arc::new(TableSchema::new(TableId { database: "d".into(), table: "t".into() }, columns, vec![0], 9));
        let big =
            i256::from_string("-99999999999999999999999999999999999123456789012345678901234567890").expect("i256");
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1)])),
            Arc::new(Int8Array::from(vec![Some(-128), None])),
            Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX)])),
            Arc::new(UInt32Array::from(vec![Some(u32::MAX), None])),
            Arc::new(Float64Array::from(vec![Some(-1.5e300), Some(0.1)])),
            Arc::new(Decimal128Array::from(vec![Some(-1234), Some(5)]).with_precision_and_scale(12, 2).expect("d")),
            Arc::new(Decimal256Array::from(vec![Some(big), None]).with_precision_and_scale(65, 30).expect("d")),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(Date32Array::from(vec![Some(-719_162), Some(2_932_896)])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_795_000_000_123_456), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(-1)]).with_timezone("UTC")),
            Arc::new(DurationMicrosecondArray::from(vec![Some(-3_020_399_000_000), Some(1)])),
            Arc::new(StringArray::from(vec![Some("ä \"quoted\" 😀"), Some("")])),
            Arc::new(BinaryArray::from(vec![Some(&[0u8, 255, 10][..]), None])),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(vec![Some(vec![1u8, 2, 3]), None].into_iter(), 3)
                    .expect("fixed"),
            ),
        ];
        let rows = RecordBatch::try_new(table.arrow.clone(), arrays).expect("batch");
        ChangeBatch {
            table,
            rows,
            ops: vec![Op::Upsert, Op::Delete],
            after: Position::Start,
            upto: Position::Start,
            stats: BatchStats::default(),
            piece: None,
        }
    }

    #[test]
    fn every_type_round_trips_without_loss() {
        let batch = every_type();
        let messages = encode(&batch, "p", 1);
        let values: Vec<&[u8]> = messages.iter().map(|m| m.value.as_slice()).collect();
        let (rows, ops) = decode(&batch.table, &values).expect("decodes");
        assert_eq!(ops, batch.ops);
        assert_eq!(rows, batch.rows);
    }

    #[test]
    fn the_documented_forms() {
        let batch = every_type();
        let messages = encode(&batch, "p", 1);
        let doc: Value = serde_json::from_slice(&messages[0].value).expect("JSON");
        let after = &doc["after"];
        assert_eq!(doc["op"], "u");
        assert_eq!(after["id"], "18446744073709551615", "BIGINT UNSIGNED as a string");
        assert_eq!(after["i64"], i64::MIN, "signed 64-bit as a number");
        assert_eq!(after["d"], "-12.34");
        assert_eq!(after["day"], "0001-01-01");
        assert_eq!(after["dt"], "2026-11-18T11:06:40.123456");
        assert_eq!(after["ts"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(after["t"], "-PT838H59M59.000000S");
        assert_eq!(after["bin"], "AP8K", "base64");
        assert_eq!(doc["source"]["cursor_column"], "dt");
        assert_eq!(doc["source"]["cursor"], "2026-11-18T11:06:40.123456");
        assert_eq!(String::from_utf8_lossy(&messages[0].key), r#"{"id":"18446744073709551615"}"#);
        let deleted: Value = serde_json::from_slice(&messages[1].value).expect("JSON");
        assert_eq!((deleted["op"].as_str(), &deleted["after"]), (Some("d"), &Value::Null));
        assert_eq!(deleted["before"]["id"], "1");
    }

    #[test]
    fn bad_documents_are_errors_naming_the_table_and_column() {
        let batch = every_type();
        let err = decode(&batch.table, &[b"{".as_slice()]).expect_err("not JSON");
        assert!(err.starts_with("d.t: not a JSON document"), "{err}");
        let err = decode(&batch.table, &[br#"{"op":"u","after":{"i8":1000}}"#.as_slice()]).expect_err("too big");
        assert!(err.contains("column i8") && err.contains("1000"), "{err}");
    }
}
