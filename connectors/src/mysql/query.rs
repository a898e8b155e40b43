//! The statements that read a table: keyset pagination in the expanded form, never OFFSET.
//!
//! ```sql
//! WHERE (c > ? OR (c = ? AND (k1 > ? OR (k1 = ? AND k2 > ?)))) AND c <= ?
//! ORDER BY c, k1, k2 LIMIT n
//! ```
//!
//! The expanded form is planned as a range scan of an `(c, k...)` index; the row-constructor
//! form `(c, k) > (?, ?)` is planned by MariaDB as a full index scan on every page.
//!
//! A first copy reads in primary-key order instead, forcing the clustered index: rows come
//! in the order InnoDB stores them, with no lookup from a secondary index per row.
//!
//! ```sql
//! SELECT ... FROM t FORCE INDEX (PRIMARY) WHERE (k1 > ? OR (k1 = ? AND k2 > ?))
//!   AND (c IS NULL OR c <= ?) ORDER BY k1, k2 LIMIT n
//! ```

use highwater_pipeline::ident::quote;
use highwater_pipeline::schema::TableSchema;

/// The reads of a table. Parameters, in order:
/// - `nulls_after`: the key, expanded (see [`key_after`]);
/// - `cursor_first`: the bound; `cursor_after`: cursor, cursor, the key expanded, the bound;
/// - `copy_first`: the copy's bound; `copy_after`: the key expanded, the copy's bound;
/// - `cursor_above`: the copy's bound, the pass's bound.
#[derive(Debug, Clone)]
pub struct TableQueries {
    /// The `LIMIT` of every read.
    pub limit: usize,
    /// Key order alone (incrementing tables): none / the key, expanded.
    pub key_first: String,
    pub key_after: String,
    pub nulls_after: String,
    pub cursor_first: String,
    pub cursor_after: String,
    /// A first copy, in primary-key order.
    pub copy_first: String,
    pub copy_after: String,
    /// A first copy's key range `(lo, hi]`, for tables keyed by one integer column.
    /// Parameters: lo, hi, the copy's bound.
    pub copy_range: String,
    /// The lowest and highest key, for tables keyed by one integer column.
    pub key_span: String,
    /// How many dates the first page of a key-order copy spans (a sink partitioned by date
    /// writes a file per date and batch). Parameter: the copy's bound.
    pub dates_in_first_page: String,
    /// The same for the page from a key on, for tables keyed by one integer column: the first
    /// rows alone can mislead (an old import, then live rows). Parameters: the key, the bound.
    pub dates_in_page_from: String,
    /// Rows whose cursor is NULL, by key, for a first copy in cursor order: none / the key.
    pub nulls_first: String,
    /// Cursor order from strictly above a finished copy's bound.
    pub cursor_above: String,
    /// The cursor and key of the highest row at or below a bound: where a finished copy hands
    /// over to cursor order. Parameter: the bound.
    pub highest_at_or_below: String,
    /// The key of the highest row whose cursor is NULL (a range of the cursor index).
    pub highest_null_key: String,
}

impl TableQueries {
    pub fn new(table: &TableSchema, limit: usize) -> Self {
        let select = format!(
            "SELECT {} FROM {}.{}",
            table.columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", "),
            quote(&table.id.database),
            quote(&table.id.table)
        );
        let keys: Vec<String> = table.key_columns().map(|c| quote(&c.name)).collect();
        let cursor = quote(&table.cursor_column().name);
        let by_key = keys.join(", ");
        let copy_select = format!("{select} FORCE INDEX (PRIMARY)");
        let copied = format!("({cursor} IS NULL OR {cursor} <= ?)");
        TableQueries {
            limit,
            copy_first: format!("{copy_select} WHERE {copied} ORDER BY {by_key} LIMIT {limit}"),
            copy_after: format!(
                "{copy_select} WHERE {} AND {copied} ORDER BY {by_key} LIMIT {limit}",
                key_after(&keys)
            ),
            highest_at_or_below: format!(
                "SELECT {cursor}, {by_key} FROM {}.{} WHERE {cursor} <= ? ORDER BY {cursor} DESC, {} LIMIT 1",
                quote(&table.id.database),
                quote(&table.id.table),
                keys.iter().map(|k| format!("{k} DESC")).collect::<Vec<_>>().join(", ")
            ),
            highest_null_key: format!(
                "SELECT {by_key} FROM {}.{} WHERE {cursor} IS NULL ORDER BY {} LIMIT 1",
                quote(&table.id.database),
                quote(&table.id.table),
                keys.iter().map(|k| format!("{k} DESC")).collect::<Vec<_>>().join(", ")
            ),
            copy_range: format!(
                "{copy_select} WHERE {first} > ? AND {first} <= ? AND {copied} ORDER BY {by_key} LIMIT {limit}",
                first = keys[0]
            ),
            dates_in_first_page: format!(
                "SELECT COUNT(DISTINCT DATE({cursor})) FROM ({copy_select} WHERE {copied} ORDER BY {by_key} LIMIT {limit}) AS page"
            ),
            dates_in_page_from: format!(
                "SELECT COUNT(DISTINCT DATE({cursor})) FROM ({copy_select} WHERE {first} >= ? AND {copied} \
                 ORDER BY {by_key} LIMIT {limit}) AS page",
                first = keys[0]
            ),
            nulls_first: format!("{select} WHERE {cursor} IS NULL ORDER BY {by_key} LIMIT {limit}"),
            key_span: format!(
                "SELECT MIN({first}), MAX({first}) FROM {}.{}",
                quote(&table.id.database),
                quote(&table.id.table),
                first = keys[0]
            ),
            cursor_above: format!(
                "{select} WHERE {cursor} > ? AND {cursor} <= ? ORDER BY {cursor}, {by_key} LIMIT {limit}"
            ),
            key_first: format!("{select} ORDER BY {by_key} LIMIT {limit}"),
            key_after: format!("{select} WHERE {} ORDER BY {by_key} LIMIT {limit}", key_after(&keys)),
            nulls_after: format!(
                "{select} WHERE {cursor} IS NULL AND {} ORDER BY {by_key} LIMIT {limit}",
                key_after(&keys)
            ),
            cursor_first: format!("{select} WHERE {cursor} <= ? ORDER BY {cursor}, {by_key} LIMIT {limit}"),
            cursor_after: format!(
                "{select} WHERE ({cursor} > ? OR ({cursor} = ? AND {})) AND {cursor} <= ? \
                 ORDER BY {cursor}, {by_key} LIMIT {limit}",
                key_after(&keys)
            ),
        }
    }
}

/// `(k1 > ? OR (k1 = ? AND k2 > ?))` for quoted key columns; parameters: every column but the
/// last twice, the last once.
pub fn key_after(keys: &[String]) -> String {
    match keys {
        [] => "TRUE".to_owned(),
        [last] => format!("{last} > ?"),
        [first, rest @ ..] => format!("({first} > ? OR ({first} = ? AND {}))", key_after(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;
    use highwater_pipeline::schema::{ColumnSchema, TableId};

    fn col(name: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            source_type: "int".into(),
            charset: None,
            collation: None,
            source_nullable: false,
            data_type: DataType::Int32,
            nullable: false,
            default: None,
            default_computed: false,
        }
    }

    #[test]
    fn composite_keys_expand_without_row_constructors_or_offset() {
        let table = TableSchema::new(
            TableId { database: "m".into(), table: "log`conv".into() },
            vec![col("idvisit"), col("idgoal"), col("buster"), col("server_time")],
            vec![0, 1, 2],
            3,
        );
        let q = TableQueries::new(&table, 7);
        assert_eq!(
            q.cursor_after,
            "SELECT `idvisit`, `idgoal`, `buster`, `server_time` FROM `m`.`log``conv` WHERE \
             (`server_time` > ? OR (`server_time` = ? AND (`idvisit` > ? OR (`idvisit` = ? AND \
             (`idgoal` > ? OR (`idgoal` = ? AND `buster` > ?)))))) AND `server_time` <= ? \
             ORDER BY `server_time`, `idvisit`, `idgoal`, `buster` LIMIT 7"
        );
        assert!(q.nulls_after.ends_with("WHERE `server_time` IS NULL AND (`idvisit` > ? OR (`idvisit` = ? AND (`idgoal` > ? OR (`idgoal` = ? AND `buster` > ?)))) ORDER BY `idvisit`, `idgoal`, `buster` LIMIT 7"));
        assert_eq!(
            q.copy_after,
            "SELECT `idvisit`, `idgoal`, `buster`, `server_time` FROM `m`.`log``conv` FORCE INDEX (PRIMARY) \
             WHERE (`idvisit` > ? OR (`idvisit` = ? AND (`idgoal` > ? OR (`idgoal` = ? AND `buster` > ?)))) \
             AND (`server_time` IS NULL OR `server_time` <= ?) ORDER BY `idvisit`, `idgoal`, `buster` LIMIT 7"
        );
        assert!(q.cursor_above.ends_with(
            "WHERE `server_time` > ? AND `server_time` <= ? ORDER BY `server_time`, `idvisit`, `idgoal`, `buster` LIMIT 7"
        ));
        for sql in [&q.nulls_after, &q.cursor_first, &q.cursor_after, &q.copy_first, &q.copy_after] {
            assert!(!sql.to_ascii_uppercase().contains("OFFSET"));
        }
    }

    #[test]
    fn single_keys() {
        assert_eq!(key_after(&["`id`".into()]), "`id` > ?");
    }
}
