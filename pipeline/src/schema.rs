//! A source table as the pipeline sees it: its columns with their Arrow types, its primary
//! key and its cursor column. Sources discover it; sinks create their targets from it.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// Arrow field metadata key holding the source's column type (`decimal(65,30)`, `enum('a')`).
pub const SOURCE_TYPE_METADATA: &str = "highwater.source_type";

/// A table of the source: `database.table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    pub database: String,
    pub table: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// One column, as the source declares it and as Arrow carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// The source's full column type, e.g. `bigint(20) unsigned`, `enum('a','b')`. Sinks of
    /// the same family recreate the column from it.
    pub source_type: String,
    /// The column's character set and collation, for text columns.
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// Whether the source column admits NULL.
    pub source_nullable: bool,
    /// The lossless Arrow type of the values (see the type table in README.md).
    pub data_type: DataType,
    /// Whether the Arrow values can be null: NULL in the source, or a date with no Arrow value.
    pub nullable: bool,
}

/// A source table: columns in source order, the key columns and the cursor column.
#[derive(Clone, Debug)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<ColumnSchema>,
    /// Indices into `columns` of the primary key, in key order.
    pub key: Vec<usize>,
    /// Index into `columns` of the cursor column.
    pub cursor: usize,
    /// The Arrow schema of the batches of this table.
    pub arrow: SchemaRef,
}

impl TableSchema {
    /// Builds the schema and its Arrow form.
    pub fn new(id: TableId, columns: Vec<ColumnSchema>, key: Vec<usize>, cursor: usize) -> Self {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| {
                Field::new(&c.name, c.data_type.clone(), c.nullable).with_metadata(std::collections::HashMap::from([(
                    SOURCE_TYPE_METADATA.to_owned(),
                    c.source_type.clone(),
                )]))
            })
            .collect();
        TableSchema { id, columns, key, cursor, arrow: Arc::new(Schema::new(fields)) }
    }

    /// The schema as JSON, to travel with batches between processes (see [`TableSchema::from_json`]).
    pub fn to_json(&self) -> String {
        let wire = WireSchema {
            id: self.id.clone(),
            columns: self.columns.clone(),
            key: self.key.clone(),
            cursor: self.cursor,
        };
        // Every field serializes: the names are strings and Arrow types have serde forms.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The schema [`TableSchema::to_json`] wrote, checked for consistency.
    pub fn from_json(text: &str) -> Result<TableSchema, String> {
        let w: WireSchema = serde_json::from_str(text).map_err(|e| format!("not a table schema: {e}"))?;
        let n = w.columns.len();
        if w.cursor >= n || w.key.is_empty() || w.key.iter().any(|&k| k >= n) {
            return Err(format!("table schema of {} names columns it does not have", w.id));
        }
        Ok(TableSchema::new(w.id, w.columns, w.key, w.cursor))
    }

    pub fn cursor_column(&self) -> &ColumnSchema {
        &self.columns[self.cursor]
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &ColumnSchema> {
        self.key.iter().map(|&i| &self.columns[i])
    }
}

/// [`TableSchema`] without its derived Arrow form.
#[derive(Serialize, Deserialize)]
struct WireSchema {
    id: TableId,
    columns: Vec<ColumnSchema>,
    key: Vec<usize>,
    cursor: usize,
}
