//! MySQL/MariaDB column types and the Arrow types that carry them without loss.
//!
//! | MySQL | Arrow |
//! | --- | --- |
//! | TINYINT..BIGINT (signed / UNSIGNED) | Int8..Int64 / UInt8..UInt64 (`TINYINT(1)` stays Int8) |
//! | DECIMAL(p,s) | Decimal128(p,s) up to p = 38, Decimal256(p,s) above |
//! | FLOAT / DOUBLE | Float32 / Float64 |
//! | BIT(1) / BIT(n) | Boolean / UInt64 |
//! | DATE | Date32 |
//! | DATETIME(n) / TIMESTAMP(n) | Timestamp(us) / Timestamp(us, UTC) |
//! | TIME(n) | Duration(us) (negative and over 24 h too) |
//! | YEAR | UInt16 |
//! | CHAR, VARCHAR, TEXT, ENUM, SET, JSON, UUID, INET4/6 | Utf8 |
//! | BINARY(n) | FixedSizeBinary(n) |
//! | VARBINARY, BLOB, spatial (SRID + WKB) | Binary |
//!
//! Zero and partial-zero dates have no Arrow value: they become NULL, so every date column is
//! nullable in Arrow.

use arrow_schema::{DataType, TimeUnit};

/// How one column's values are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Decimal128 {
        precision: u8,
        scale: i8,
    },
    Decimal256 {
        precision: u8,
        scale: i8,
    },
    Float32,
    Float64,
    /// BIT(1).
    Bool,
    /// BIT(2..=64), big-endian on the wire.
    Bits,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Text,
    Binary,
    FixedBinary(i32),
}

/// What `information_schema.COLUMNS` says of a column.
#[derive(Clone, Debug, Default)]
pub struct ColumnInfo {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `decimal`, `enum`.
    pub data_type: String,
    /// `COLUMN_TYPE`: `int(10) unsigned`, `decimal(65,30)`, `enum('a','b')`.
    pub column_type: String,
    pub nullable: bool,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
    pub octet_length: Option<u64>,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// `COLUMN_DEFAULT` as the server shows it, and whether it is an expression (MySQL's
    /// `DEFAULT_GENERATED`).
    pub default: Option<String>,
    pub default_generated: bool,
    /// The server quotes literal defaults (MariaDB): an unquoted one is an expression.
    pub default_quoted: bool,
}

impl ColumnInfo {
    /// The column's default as a SQL literal, when it is a constant (see
    /// `ColumnSchema::default`).
    pub fn default_literal(&self) -> Option<String> {
        let Some(d) = self.default.as_deref() else { return self.implicit_default() };
        if self.default_generated || (self.default_quoted && d.eq_ignore_ascii_case("NULL")) {
            return None;
        }
        let number =
            !d.is_empty() && d.parse::<f64>().is_ok() && d.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
        if self.default_quoted {
            let quoted = d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'');
            let bits = d.len() >= 3 && (d.starts_with("b'") || d.starts_with("B'")) && d.ends_with('\'');
            (quoted || bits || number).then(|| d.to_owned())
        } else if d.contains('\\') {
            // Its quoting depends on the sink's sql_mode: left out rather than guessed.
            None
        } else {
            Some(format!("'{}'", d.replace('\'', "''")))
        }
    }

    /// Whether the column has a default that is not a constant the sink can repeat.
    pub fn has_expression_default(&self) -> bool {
        let null = self.default.as_deref().is_none_or(|d| self.default_quoted && d.eq_ignore_ascii_case("NULL"));
        !null && self.default_literal().is_none()
    }

    /// What a NOT NULL column with no default holds in rows that existed when it was added:
    /// the type's implicit default (0, '', the first ENUM value, midnight). Zero dates, which
    /// load as NULL, and types without one (JSON, spatial) give `None`.
    fn implicit_default(&self) -> Option<String> {
        if self.nullable {
            return None;
        }
        let t = self.data_type.as_str();
        match t {
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float" | "double" | "bit"
            | "year" => Some("0".to_owned()),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "binary" | "varbinary"
            | "tinyblob" | "blob" | "mediumblob" | "longblob" | "set" => Some("''".to_owned()),
            "enum" => {
                // enum('a','b''c'): the first value, as it is quoted there.
                let inner = self.column_type.strip_prefix("enum(")?;
                let mut end = 1;
                let bytes = inner.as_bytes();
                while end < bytes.len() {
                    if bytes[end] == b'\'' {
                        if bytes.get(end + 1) == Some(&b'\'') {
                            end += 2;
                            continue;
                        }
                        break;
                    }
                    end += 1;
                }
                inner.get(..=end).filter(|v| v.starts_with('\'')).map(str::to_owned)
            }
            "time" => Some("'00:00:00'".to_owned()),
            _ => None,
        }
    }
}

impl Kind {
    /// The decoding of a column, or why it has none yet.
    pub fn of(c: &ColumnInfo) -> Result<Kind, String> {
        let unsigned = c.column_type.to_ascii_lowercase().contains("unsigned");
        let kind = match c.data_type.to_ascii_lowercase().as_str() {
            "tinyint" if unsigned => Kind::UInt8,
            "tinyint" => Kind::Int8,
            "smallint" if unsigned => Kind::UInt16,
            "smallint" => Kind::Int16,
            "mediumint" | "int" | "integer" if unsigned => Kind::UInt32,
            "mediumint" | "int" | "integer" => Kind::Int32,
            "bigint" if unsigned => Kind::UInt64,
            "bigint" => Kind::Int64,
            "decimal" | "numeric" => {
                let precision = c.numeric_precision.unwrap_or(10);
                let scale = c.numeric_scale.unwrap_or(0);
                if precision == 0 || precision > 76 || scale > precision {
                    return Err(format!("DECIMAL({precision},{scale}) is out of range"));
                }
                let (precision, scale) = (precision as u8, scale as i8);
                if precision <= 38 {
                    Kind::Decimal128 { precision, scale }
                } else {
                    Kind::Decimal256 { precision, scale }
                }
            }
            "float" => Kind::Float32,
            "double" | "real" | "double precision" => Kind::Float64,
            "bit" => match c.numeric_precision {
                Some(1) | None => Kind::Bool,
                Some(n) if n <= 64 => Kind::Bits,
                Some(n) => return Err(format!("BIT({n}) is wider than 64 bits")),
            },
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "time" => Kind::Time,
            "year" => Kind::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" | "json" | "uuid"
            | "inet4" | "inet6" => Kind::Text,
            "binary" => match c.octet_length {
                Some(n @ 1..=65_535) => Kind::FixedBinary(n as i32),
                _ => Kind::Binary,
            },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point" | "linestring"
            | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection"
            | "geomcollection" => Kind::Binary,
            other => return Err(format!("{other} ({}) has no Arrow mapping", c.column_type)),
        };
        Ok(kind)
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt8 => DataType::UInt8,
            Kind::UInt16 | Kind::Year => DataType::UInt16,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 | Kind::Bits => DataType::UInt64,
            Kind::Decimal128 { precision, scale } => DataType::Decimal128(precision, scale),
            Kind::Decimal256 { precision, scale } => DataType::Decimal256(precision, scale),
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Time => DataType::Duration(TimeUnit::Microsecond),
            Kind::Text => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::FixedBinary(n) => DataType::FixedSizeBinary(n),
        }
    }

    /// Dates can hold zero dates, which become NULL.
    pub fn is_date(self) -> bool {
        matches!(self, Kind::Date | Kind::DateTime | Kind::Timestamp)
    }

    /// Whether a cursor column may have this kind.
    pub fn is_cursor(self) -> bool {
        self.is_date()
    }

    /// Whether an integer primary key of this kind can order a table by itself
    /// (incrementing mode).
    pub fn is_incrementing(self) -> bool {
        matches!(
            self,
            Kind::Int8
                | Kind::Int16
                | Kind::Int32
                | Kind::Int64
                | Kind::UInt8
                | Kind::UInt16
                | Kind::UInt32
                | Kind::UInt64
        )
    }

    /// Whether a primary-key column of this kind can be a keyset position.
    pub fn is_key(self) -> bool {
        !matches!(self, Kind::Float32 | Kind::Float64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(data_type: &str, column_type: &str) -> Result<Kind, String> {
        Kind::of(&ColumnInfo {
            data_type: data_type.into(),
            column_type: column_type.into(),
            numeric_precision: match column_type {
                "decimal(65,30)" => Some(65),
                "decimal(8,4)" => Some(8),
                "bit(1)" => Some(1),
                "bit(64)" => Some(64),
                _ => None,
            },
            numeric_scale: match column_type {
                "decimal(65,30)" => Some(30),
                "decimal(8,4)" => Some(4),
                _ => None,
            },
            octet_length: (data_type == "binary").then_some(8),
            ..Default::default()
        })
    }

    #[test]
    fn constant_defaults_become_literals_and_expressions_none() {
        let of = |default: Option<&str>, generated: bool, quoted: bool| {
            ColumnInfo {
                default: default.map(str::to_owned),
                default_generated: generated,
                default_quoted: quoted,
                ..Default::default()
            }
            .default_literal()
        };
        // MariaDB: literals quoted, expressions bare, NULL as a word.
        assert_eq!(of(Some("'x'"), false, true).as_deref(), Some("'x'"));
        assert_eq!(of(Some("'it''s'"), false, true).as_deref(), Some("'it''s'"));
        assert_eq!(of(Some("-1.5e3"), false, true).as_deref(), Some("-1.5e3"));
        assert_eq!(of(Some("b'101'"), false, true).as_deref(), Some("b'101'"));
        assert_eq!(of(Some("NULL"), false, true), None);
        assert_eq!(of(Some("current_timestamp()"), false, true), None);
        assert_eq!(of(Some("uuid()"), false, true), None);
        assert_eq!(of(None, false, true), None);
        // MySQL: literals bare, expressions marked.
        assert_eq!(of(Some("x"), false, false).as_deref(), Some("'x'"));
        assert_eq!(of(Some("it's"), false, false).as_deref(), Some("'it''s'"));
        assert_eq!(of(Some("CURRENT_TIMESTAMP"), true, false), None);
        assert_eq!(of(Some("a\\b"), false, false), None);
        // NOT NULL with no default: what the rows there before the column got.
        let implicit = |data_type: &str, column_type: &str| {
            ColumnInfo { data_type: data_type.into(), column_type: column_type.into(), ..Default::default() }
                .default_literal()
        };
        assert_eq!(implicit("int", "int(11)").as_deref(), Some("0"));
        assert_eq!(implicit("varchar", "varchar(5)").as_deref(), Some("''"));
        assert_eq!(implicit("enum", "enum('it''s','b')").as_deref(), Some("'it''s'"));
        assert_eq!(implicit("enum", "enum('x','y')").as_deref(), Some("'x'"));
        assert_eq!(implicit("time", "time").as_deref(), Some("'00:00:00'"));
        assert_eq!(implicit("datetime", "datetime"), None, "a zero date loads as NULL");
        let nullable = ColumnInfo { data_type: "int".into(), nullable: true, ..Default::default() };
        assert_eq!(nullable.default_literal(), None);
    }

    #[test]
    fn expression_defaults_are_told_from_constants_and_no_default() {
        let of = |default: Option<&str>, generated: bool, quoted: bool| {
            ColumnInfo {
                data_type: "varchar".into(),
                nullable: true,
                default: default.map(str::to_owned),
                default_generated: generated,
                default_quoted: quoted,
                ..Default::default()
            }
            .has_expression_default()
        };
        assert!(of(Some("uuid()"), false, true));
        assert!(of(Some("CURRENT_TIMESTAMP"), true, false));
        assert!(!of(Some("'x'"), false, true));
        assert!(!of(Some("x"), false, false));
        assert!(!of(Some("NULL"), false, true));
        assert!(!of(None, false, true));
    }

    #[test]
    fn integers_keep_sign_and_width() {
        assert_eq!(kind("bigint", "bigint(20) unsigned"), Ok(Kind::UInt64));
        assert_eq!(kind("tinyint", "tinyint(1)"), Ok(Kind::Int8), "TINYINT(1) can hold 5: not a bool");
        assert_eq!(kind("int", "int(5) unsigned zerofill"), Ok(Kind::UInt32));
        assert_eq!(kind("mediumint", "mediumint(9)"), Ok(Kind::Int32));
    }

    #[test]
    fn decimals_choose_their_width_by_precision() {
        assert_eq!(kind("decimal", "decimal(8,4)").map(Kind::arrow_type), Ok(DataType::Decimal128(8, 4)));
        assert_eq!(kind("decimal", "decimal(65,30)").map(Kind::arrow_type), Ok(DataType::Decimal256(65, 30)));
    }

    #[test]
    fn temporal_types() {
        assert_eq!(kind("time", "time(6)").map(Kind::arrow_type), Ok(DataType::Duration(TimeUnit::Microsecond)));
        assert_eq!(
            kind("timestamp", "timestamp(6)").map(Kind::arrow_type),
            Ok(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        );
        assert_eq!(kind("year", "year(4)").map(Kind::arrow_type), Ok(DataType::UInt16));
        assert!(kind("datetime", "datetime(6)").is_ok_and(Kind::is_cursor));
        assert!(!kind("time", "time").is_ok_and(Kind::is_cursor));
    }

    #[test]
    fn strings_bits_and_binaries() {
        assert_eq!(kind("bit", "bit(1)"), Ok(Kind::Bool));
        assert_eq!(kind("bit", "bit(64)"), Ok(Kind::Bits));
        assert_eq!(kind("binary", "binary(8)"), Ok(Kind::FixedBinary(8)));
        assert_eq!(kind("point", "point"), Ok(Kind::Binary));
        assert_eq!(kind("enum", "enum('a','b')"), Ok(Kind::Text));
        assert_eq!(kind("uuid", "uuid"), Ok(Kind::Text));
    }

    #[test]
    fn unknown_types_are_errors_not_panics() {
        let err = kind("vector", "vector(3)").expect_err("unsupported");
        assert!(err.contains("vector(3)"), "{err}");
    }
}
