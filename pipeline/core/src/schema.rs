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
    /// The column's default as a SQL literal (`'x'`, `5`), when it has a constant one: a
    /// column added to the source later holds it in every row that existed, so a sink that adds
    /// the column fills its existing rows with it. `None`: no default, NULL, or an expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The column's default is an expression (`DEFAULT (UUID())`): the rows that existed when
    /// it was added got values a sink adding it later cannot repeat.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_computed: bool,
}

/// A foreign key the source declares: `columns` of the table reference `parent_columns` of
/// `parent`, a table of the same database. Sinks that can recreate constraints use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub parent: String,
    pub parent_columns: Vec<String>,
    /// The actions as SQL declares them (`CASCADE`, `SET NULL`); `None`: no action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
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
    /// The foreign keys the source declares, where it tells them (see [`Self::with_foreign_keys`]).
    pub foreign_keys: Vec<ForeignKey>,
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
        TableSchema { id, columns, key, cursor, arrow: Arc::new(Schema::new(fields)), foreign_keys: Vec::new() }
    }

    /// The schema with the foreign keys the source declares.
    pub fn with_foreign_keys(mut self, foreign_keys: Vec<ForeignKey>) -> Self {
        self.foreign_keys = foreign_keys;
        self
    }

    /// The schema as JSON, to travel with batches between processes (see [`TableSchema::from_json`]).
    pub fn to_json(&self) -> String {
        let wire = WireSchema {
            id: self.id.clone(),
            columns: self.columns.clone(),
            key: self.key.clone(),
            cursor: self.cursor,
            foreign_keys: self.foreign_keys.clone(),
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
        Ok(TableSchema::new(w.id, w.columns, w.key, w.cursor).with_foreign_keys(w.foreign_keys))
    }

    pub fn cursor_column(&self) -> &ColumnSchema {
        &self.columns[self.cursor]
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &ColumnSchema> {
        self.key.iter().map(|&i| &self.columns[i])
    }
}

/// How a table's columns changed between two looks at it.
#[derive(Debug, PartialEq, Eq)]
pub enum Evolution {
    Same,
    /// Columns were added (named here); every earlier column is as it was. Sinks add them.
    Added(Vec<String>),
    /// A column was dropped, renamed or retyped, or the key or cursor changed: what changed,
    /// in words. Replicating on would lose or garble data, so the table stops.
    Breaking(String),
}

impl TableSchema {
    /// How `now` differs from `self` (what was last seen). Column order does not matter:
    /// statements and sinks name columns.
    pub fn evolution(&self, now: &TableSchema) -> Evolution {
        let find = |name: &str| now.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name));
        let added: Vec<&ColumnSchema> =
            now.columns.iter().filter(|c| !self.columns.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name))).collect();
        let mut changes = Vec::new();
        for old in &self.columns {
            match find(&old.name) {
                None => {
                    let renamed: Vec<&str> =
                        added.iter().filter(|c| c.source_type == old.source_type).map(|c| c.name.as_str()).collect();
                    if renamed.is_empty() {
                        changes.push(format!("column {} ({}) was dropped", old.name, old.source_type));
                    } else {
                        changes.push(format!(
                            "column {} was dropped or renamed (to {}?)",
                            old.name,
                            renamed.join(" or ")
                        ));
                    }
                }
                Some(c) if c.source_type != old.source_type || c.source_nullable != old.source_nullable => {
                    let null = |n: bool| if n { "NULL" } else { "NOT NULL" };
                    changes.push(format!(
                        "column {} changed from {} {} to {} {}",
                        old.name,
                        old.source_type,
                        null(old.source_nullable),
                        c.source_type,
                        null(c.source_nullable)
                    ));
                }
                Some(_) => {}
            }
        }
        let names = |t: &TableSchema, idx: &[usize]| {
            idx.iter().map(|&i| t.columns[i].name.to_ascii_lowercase()).collect::<Vec<_>>()
        };
        if names(self, &self.key) != names(now, &now.key) {
            changes.push(format!(
                "the primary key changed from ({}) to ({})",
                names(self, &self.key).join(", "),
                names(now, &now.key).join(", ")
            ));
        }
        if !changes.is_empty() {
            Evolution::Breaking(changes.join("; "))
        } else if added.is_empty() {
            Evolution::Same
        } else {
            Evolution::Added(added.iter().map(|c| c.name.clone()).collect())
        }
    }
}

/// [`TableSchema`] without its derived Arrow form.
#[derive(Serialize, Deserialize)]
struct WireSchema {
    id: TableId,
    columns: Vec<ColumnSchema>,
    key: Vec<usize>,
    cursor: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    foreign_keys: Vec<ForeignKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, nullable: bool) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            source_type: ty.into(),
            charset: None,
            collation: None,
            source_nullable: nullable,
            data_type: DataType::Int64,
            nullable,
            default: None,
            default_computed: false,
        }
    }

    fn table(columns: Vec<ColumnSchema>) -> TableSchema {
        TableSchema::new(TableId { database: "d".into(), table: "t".into() }, columns, vec![0], 1)
    }

    fn base() -> Vec<ColumnSchema> {
        vec![col("id", "bigint(20)", false), col("update_time", "datetime(6)", false), col("name", "varchar(64)", true)]
    }

    #[test]
    fn same_columns_in_another_order_or_case_are_the_same() {
        let mut moved = base();
        moved.swap(1, 2);
        moved[2].name = "UPDATE_TIME".into();
        let mut t = table(moved);
        t.cursor = 2;
        assert_eq!(table(base()).evolution(&t), Evolution::Same);
    }

    #[test]
    fn added_columns_evolve() {
        let mut more = base();
        more.push(col("note", "text", true));
        assert_eq!(table(base()).evolution(&table(more)), Evolution::Added(vec!["note".into()]));
    }

    #[test]
    fn dropped_renamed_and_retyped_columns_break_and_say_what_changed() {
        let dropped = table(base()[..2].to_vec());
        let Evolution::Breaking(why) = table(base()).evolution(&dropped) else { panic!("dropped") };
        assert_eq!(why, "column name (varchar(64)) was dropped");

        let mut renamed = base();
        renamed[2].name = "title".into();
        let Evolution::Breaking(why) = table(base()).evolution(&table(renamed)) else { panic!("renamed") };
        assert_eq!(why, "column name was dropped or renamed (to title?)");

        let mut retyped = base();
        retyped[2] = col("name", "varchar(16)", false);
        let Evolution::Breaking(why) = table(base()).evolution(&table(retyped)) else { panic!("retyped") };
        assert_eq!(why, "column name changed from varchar(64) NULL to varchar(16) NOT NULL");

        let mut rekeyed = table(base());
        rekeyed.key = vec![0, 2];
        let Evolution::Breaking(why) = table(base()).evolution(&rekeyed) else { panic!("rekeyed") };
        assert_eq!(why, "the primary key changed from (id) to (id, name)");
    }
}
