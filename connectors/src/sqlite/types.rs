//! SQLite's declared column types and the types the pipeline carries them in.
//!
//! SQLite is dynamically typed: a column's declared type gives it an affinity, and each value
//! has its own storage class (NULL, INTEGER, REAL, TEXT, BLOB). The column is mapped by its
//! declared type; each value is then checked against it, and one that does not fit stops the
//! table with its column, key and class (unless the table reads such columns as text).
//!
//! | Declared type (SQLite's affinity rules) | Sink type (`source_type`) | Arrow |
//! | --- | --- | --- |
//! | `BOOL`, `BOOLEAN` | `tinyint(1)` | Int8 |
//! | `DATE` | `date` | Date32 |
//! | containing `DATETIME` or `TIMESTAMP` | `datetime(6)` | Timestamp(us) |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)` with p <= 38 | `decimal(p,s)` | Decimal128(p,s) |
//! | containing `INT` | `bigint` | Int64 |
//! | containing `CHAR`, `CLOB`, `TEXT` | `longtext` (`varchar(255)` in a key, binary collation) | Utf8 |
//! | containing `BLOB`, or none | `longblob` (`varbinary(255)` in a key) | Binary |
//! | containing `REAL`, `FLOA`, `DOUB` | `double` | Float64 |
//! | anything else (`NUMERIC`, `DECIMAL`, `MONEY`) | `double` | Float64 |
//!
//! `source_type` is written in the MySQL dialect, which is what the sinks create targets from.

use arrow_schema::{DataType, TimeUnit};

/// How one column's values are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Real,
    Decimal { precision: u8, scale: i8 },
    Date,
    DateTime,
    Text,
    Blob,
}

impl Kind {
    /// The kind of a column declared `declared` (SQLite's affinity rules, then the names
    /// applications use for booleans, dates and exact numbers).
    pub fn of(declared: &str) -> Kind {
        let t = declared.trim().to_ascii_uppercase();
        let base = t.split('(').next().unwrap_or_default().trim();
        if base == "BOOL" || base == "BOOLEAN" {
            return Kind::Bool;
        }
        if base == "DATE" {
            return Kind::Date;
        }
        if t.contains("DATETIME") || t.contains("TIMESTAMP") {
            return Kind::DateTime;
        }
        if (base == "DECIMAL" || base == "NUMERIC")
            && let Some((precision, scale)) = precision_scale(&t)
        {
            return Kind::Decimal { precision, scale };
        }
        if t.contains("INT") {
            Kind::Int
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Kind::Text
        } else if t.contains("BLOB") || t.is_empty() {
            Kind::Blob
        } else {
            Kind::Real
        }
    }

    /// The column type sinks create, in the MySQL dialect; `in_key`: a primary-key column,
    /// which must have a bounded length.
    pub fn sink_type(self, in_key: bool) -> String {
        match self {
            Kind::Bool => "tinyint(1)".into(),
            Kind::Int => "bigint".into(),
            Kind::Real => "double".into(),
            Kind::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            Kind::Date => "date".into(),
            Kind::DateTime => "datetime(6)".into(),
            Kind::Text if in_key => "varchar(255)".into(),
            Kind::Text => "longtext".into(),
            Kind::Blob if in_key => "varbinary(255)".into(),
            Kind::Blob => "longblob".into(),
        }
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Int8,
            Kind::Int => DataType::Int64,
            Kind::Real => DataType::Float64,
            Kind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Text => DataType::Utf8,
            Kind::Blob => DataType::Binary,
        }
    }

    /// The storage classes a column of this kind holds without loss, as `typeof()` names them.
    pub fn classes(self) -> &'static str {
        match self {
            Kind::Bool | Kind::Int => "integer",
            Kind::Real => "real or integer",
            Kind::Decimal { .. } => "integer, real or numeric text",
            Kind::Date | Kind::DateTime => "text in ISO 8601 form",
            Kind::Text => "text",
            Kind::Blob => "blob or text",
        }
    }
}

/// `(p,s)` of `DECIMAL(p,s)` when Decimal128 holds it (`p` in 1..=38, `s` in 0..=p).
fn precision_scale(declared: &str) -> Option<(u8, i8)> {
    let inner = declared.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = match inner.split_once(',') {
        Some((p, s)) => (p.trim().parse::<u8>().ok()?, s.trim().parse::<i8>().ok()?),
        None => (inner.trim().parse::<u8>().ok()?, 0),
    };
    ((1..=38).contains(&p) && s >= 0 && s as u8 <= p).then_some((p, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity_then_application_names() {
        let cases = [
            ("INTEGER", Kind::Int),
            ("bigint unsigned", Kind::Int),
            ("TINYINT(1)", Kind::Int),
            ("BOOLEAN", Kind::Bool),
            ("bool", Kind::Bool),
            ("VARCHAR(255)", Kind::Text),
            ("NVARCHAR(10)", Kind::Text),
            ("CLOB", Kind::Text),
            ("TEXT", Kind::Text),
            ("BLOB", Kind::Blob),
            ("", Kind::Blob),
            ("REAL", Kind::Real),
            ("DOUBLE PRECISION", Kind::Real),
            ("FLOAT", Kind::Real),
            ("NUMERIC", Kind::Real),
            ("MONEY", Kind::Real),
            ("DECIMAL(10,2)", Kind::Decimal { precision: 10, scale: 2 }),
            ("numeric(7)", Kind::Decimal { precision: 7, scale: 0 }),
            ("DECIMAL(65,30)", Kind::Real),
            ("DATE", Kind::Date),
            ("DATETIME", Kind::DateTime),
            ("TIMESTAMP", Kind::DateTime),
            // SQLite's first rule wins: "INT" anywhere is an integer.
            ("POINT", Kind::Int),
        ];
        for (declared, kind) in cases {
            assert_eq!(Kind::of(declared), kind, "{declared}");
        }
    }

    #[test]
    fn keys_get_bounded_types_and_decimals_keep_their_scale() {
        assert_eq!(Kind::Text.sink_type(true), "varchar(255)");
        assert_eq!(Kind::Text.sink_type(false), "longtext");
        assert_eq!(Kind::Blob.sink_type(true), "varbinary(255)");
        assert_eq!(Kind::of("DECIMAL(10,2)").sink_type(false), "decimal(10,2)");
        assert_eq!(Kind::of("DECIMAL(10,2)").arrow_type(), DataType::Decimal128(10, 2));
    }
}
