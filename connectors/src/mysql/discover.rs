//! Columns and primary key of each configured table, from `information_schema`, checked
//! against the config before anything is read.

use super::config::{EpochUnit, TableConfig};
use highwater_pipeline::schema::{ColumnSchema, TableId, TableSchema};
use highwater_pipeline::source::SourceError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::connect::query_error;
use super::types::{ColumnInfo, Kind};

const COLUMNS_SQL: &str = "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, \
     NUMERIC_SCALE, CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_DEFAULT, EXTRA, \
     @@version LIKE '%MariaDB%' \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

const PRIMARY_KEY_SQL: &str = "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX";

/// A discovered table with the decoding of each column.
pub struct Discovered {
    pub schema: TableSchema,
    pub kinds: Vec<Kind>,
    /// The cursor is the table's single integer primary key: rows are read by key alone.
    pub incrementing: bool,
    /// The cursor is an integer counting Unix time in this unit (`cursor_unit`).
    pub epoch: Option<EpochUnit>,
}

/// Discovers the table `config` names in `database`; `key` is the config key of the table
/// entry, for messages.
pub async fn discover(
    conn: &mut Conn,
    database: &str,
    config: &TableConfig,
    key: &str,
) -> Result<Discovered, SourceError> {
    let (table, cursor) = (config.name.as_str(), config.cursor.as_str());
    let id = TableId { database: database.to_owned(), table: table.to_owned() };
    let rows: Vec<Row> =
        conn.exec(COLUMNS_SQL, (database, table)).await.map_err(|e| query_error(format!("the columns of {id}"), e))?;
    if rows.is_empty() {
        return Err(SourceError::MissingTable { table: id, key: format!("{key}.name") });
    }
    let infos: Vec<ColumnInfo> = rows.into_iter().map(column_info).collect();
    let key_names: Vec<String> = conn
        .exec(PRIMARY_KEY_SQL, (database, table))
        .await
        .map_err(|e| query_error(format!("the primary key of {id}"), e))?;
    if key_names.is_empty() {
        return Err(SourceError::NoPrimaryKey { table: id });
    }

    let mut columns = Vec::with_capacity(infos.len());
    let mut kinds = Vec::with_capacity(infos.len());
    for info in &infos {
        let kind = Kind::of(info).map_err(|reason| SourceError::UnsupportedType {
            table: id.clone(),
            column: info.name.clone(),
            column_type: reason,
        })?;
        columns.push(ColumnSchema {
            name: info.name.clone(),
            source_type: info.column_type.clone(),
            charset: info.charset.clone(),
            collation: info.collation.clone(),
            source_nullable: info.nullable,
            data_type: kind.arrow_type(),
            nullable: info.nullable || kind.is_date(),
            default: info.default_literal(),
            default_computed: info.has_expression_default(),
        });
        kinds.push(kind);
    }

    // Column names compare case-insensitively in MySQL.
    let position = |name: &str| infos.iter().position(|c| c.name.eq_ignore_ascii_case(name));
    let cursor_index = position(cursor).ok_or_else(|| SourceError::MissingColumn {
        table: id.clone(),
        column: cursor.to_owned(),
        key: format!("{key}.cursor"),
    })?;
    let is_key = key_names.len() == 1 && key_names[0].eq_ignore_ascii_case(&infos[cursor_index].name);
    let integer = kinds[cursor_index].is_incrementing();
    let incrementing = is_key && integer && config.cursor_unit.is_none();
    let refused = match config.cursor_unit {
        Some(_) => !integer,
        None => !kinds[cursor_index].is_cursor() && !incrementing,
    };
    if refused {
        let (column, column_type) = (infos[cursor_index].name.clone(), infos[cursor_index].column_type.clone());
        return Err(match config.cursor_unit {
            Some(_) => SourceError::CursorUnitNotInteger {
                table: id,
                column_and_type: format!("{column} is {column_type}"),
                key: format!("{key}.cursor_unit"),
            },
            None => SourceError::UnsupportedCursor { table: id, column, column_type, key: format!("{key}.cursor") },
        });
    }
    let mut key_indices = Vec::with_capacity(key_names.len());
    for name in &key_names {
        let i = position(name).ok_or_else(|| SourceError::MissingColumn {
            table: id.clone(),
            column: name.clone(),
            key: format!("{key} (primary key)"),
        })?;
        if !kinds[i].is_key() {
            return Err(SourceError::UnsupportedType {
                table: id,
                column: name.clone(),
                column_type: format!("{} as a primary-key column", infos[i].column_type),
            });
        }
        key_indices.push(i);
    }
    Ok(Discovered {
        schema: TableSchema::new(id, columns, key_indices, cursor_index),
        kinds,
        incrementing,
        epoch: config.cursor_unit,
    })
}

fn column_info(mut row: Row) -> ColumnInfo {
    // information_schema sends text and numbers; read every cell as its text form.
    let mut text = |i: usize| match row.take::<Value, _>(i) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        Some(Value::Int(v)) => Some(v.to_string()),
        Some(Value::UInt(v)) => Some(v.to_string()),
        _ => None,
    };
    let name = text(0).unwrap_or_default();
    let data_type = text(1).unwrap_or_default();
    let column_type = text(2).unwrap_or_default();
    let nullable = text(3).is_some_and(|s| s == "YES");
    let numeric_precision = text(4).and_then(|s| s.parse().ok());
    let numeric_scale = text(5).and_then(|s| s.parse().ok());
    let octet_length = text(6).and_then(|s| s.parse().ok());
    let charset = text(7);
    let collation = text(8);
    let default = text(9);
    let extra = text(10).unwrap_or_default();
    let mariadb = text(11).is_some_and(|v| v == "1");
    ColumnInfo {
        name,
        data_type,
        column_type,
        nullable,
        numeric_precision,
        numeric_scale,
        octet_length,
        charset,
        collation,
        default,
        // MariaDB shows expressions unquoted and literals quoted; MySQL shows literals bare and
        // marks expressions.
        default_generated: extra.contains("DEFAULT_GENERATED"),
        default_quoted: mariadb,
    }
}
