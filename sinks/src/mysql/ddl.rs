//! Target tables from the source schema.
//!
//! Same columns (by the source's own column types), same primary key, an index on the cursor
//! column for the version guard and for readers, and nothing else: no foreign keys (TiDB
//! handles them differently, and a replica loads tables in any order), no defaults, no
//! `ON UPDATE`, no generated expressions (generated values are copied as plain values).
//! Date columns admit NULL because zero dates arrive as NULL.

use highwater_pipeline::ident::quote;
use highwater_pipeline::schema::TableSchema;

/// `CREATE TABLE IF NOT EXISTS` for the target of `table`.
pub fn create_table(table: &TableSchema) -> String {
    let mut lines: Vec<String> = (0..table.columns.len()).map(|i| format!("  {}", column(table, i, false))).collect();
    let key: Vec<String> = table.key_columns().map(|c| quote(&c.name)).collect();
    lines.push(format!("  PRIMARY KEY ({})", key.join(", ")));
    lines.push(format!("  KEY `hw_cursor` ({})", quote(&table.cursor_column().name)));
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        quote(&table.id.table),
        lines.join(",\n")
    )
}

/// The definition of column `i`; `added` ones admit NULL, and the rows loaded before take the
/// source's constant default, which the source's existing rows took when the column was added.
fn column(table: &TableSchema, i: usize, added: bool) -> String {
    let c = &table.columns[i];
    let mut line = format!("{} {}", quote(&c.name), c.source_type);
    if let (Some(charset), Some(collation)) = (&c.charset, &c.collation)
        && is_textual(&c.source_type)
    {
        line.push_str(&format!(" CHARACTER SET {charset} COLLATE {collation}"));
    }
    if !added && (table.key.contains(&i) || !c.nullable) {
        line.push_str(" NOT NULL");
    } else {
        let default = if added { c.default.as_deref().unwrap_or("NULL") } else { "NULL" };
        line.push_str(&format!(" NULL DEFAULT {default}"));
    }
    line
}

/// `ALTER TABLE ... ADD COLUMN ...` for the columns of `table` the target (with columns
/// `existing`) lacks; `None` when it has them all.
pub fn add_columns(table: &TableSchema, existing: &[String]) -> Option<String> {
    let adds: Vec<String> = (0..table.columns.len())
        .filter(|&i| !existing.iter().any(|e| e.eq_ignore_ascii_case(&table.columns[i].name)))
        .map(|i| format!("ADD COLUMN {}", column(table, i, true)))
        .collect();
    (!adds.is_empty()).then(|| format!("ALTER TABLE {} {}", quote(&table.id.table), adds.join(", ")))
}

/// The columns [`add_columns`] adds whose default is an expression (see
/// `ColumnSchema::default_computed`).
pub fn computed_defaults_among_added<'t>(table: &'t TableSchema, existing: &[String]) -> Vec<&'t str> {
    (table.columns.iter())
        .filter(|c| c.default_computed && !existing.iter().any(|e| e.eq_ignore_ascii_case(&c.name)))
        .map(|c| c.name.as_str())
        .collect()
}

/// Column types that take a character set clause.
fn is_textual(column_type: &str) -> bool {
    let t = column_type.trim_start().to_ascii_lowercase();
    ["char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"]
        .iter()
        .any(|p| t.starts_with(p) && t[p.len()..].chars().next().is_none_or(|c| c == '(' || c == ' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;
    use highwater_pipeline::schema::{ColumnSchema, TableId};

    fn col(name: &str, ty: &str, nullable: bool, charset: Option<&str>) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            source_type: ty.into(),
            charset: charset.map(Into::into),
            collation: charset.map(|c| format!("{c}_general_ci")),
            source_nullable: nullable,
            data_type: DataType::Utf8,
            nullable,
            default: None,
            default_computed: false,
        }
    }

    #[test]
    fn keeps_types_key_and_charsets_and_adds_a_cursor_index() {
        let t = TableSchema::new(
            TableId { database: "m".into(), table: "log_conversion".into() },
            vec![
                col("idvisit", "bigint(10) unsigned", false, None),
                col("idgoal", "int(10)", false, None),
                col("server_time", "datetime", true, None),
                col("name", "varchar(255)", true, Some("utf8mb4")),
                col("setting", "set('a','b')", false, Some("latin1")),
                col("tx", "textual_thing", true, Some("utf8mb4")),
            ],
            vec![0, 1],
            2,
        );
        assert_eq!(
            create_table(&t),
            "CREATE TABLE IF NOT EXISTS `log_conversion` (\n  `idvisit` bigint(10) unsigned NOT NULL,\n  \
             `idgoal` int(10) NOT NULL,\n  `server_time` datetime NULL DEFAULT NULL,\n  `name` varchar(255) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL DEFAULT NULL,\n  `setting` set('a','b') \
             CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,\n  `tx` textual_thing NULL DEFAULT NULL,\n  \
             PRIMARY KEY (`idvisit`, `idgoal`),\n  KEY `hw_cursor` (`server_time`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert!(!create_table(&t).to_ascii_uppercase().contains("FOREIGN"));
    }

    #[test]
    fn added_columns_admit_null_for_the_rows_loaded_before() {
        let t = TableSchema::new(
            TableId { database: "m".into(), table: "o`rders".into() },
            vec![
                col("id", "bigint(20)", false, None),
                col("update_time", "datetime(6)", false, None),
                col("note", "varchar(8)", false, Some("utf8mb4")),
                col("n", "int(11)", true, None),
            ],
            vec![0],
            1,
        );
        let existing = ["ID".to_owned(), "update_time".to_owned()];
        assert_eq!(
            add_columns(&t, &existing).as_deref(),
            Some(
                "ALTER TABLE `o``rders` ADD COLUMN `note` varchar(8) CHARACTER SET utf8mb4 COLLATE \
                 utf8mb4_general_ci NULL DEFAULT NULL, ADD COLUMN `n` int(11) NULL DEFAULT NULL"
            )
        );
        let all: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(add_columns(&t, &all), None);
        // A constant default fills the rows loaded before, as it filled the source's.
        let mut t = t;
        t.columns[2].default = Some("'x'".into());
        assert!(add_columns(&t, &existing).expect("adds").contains("utf8mb4_general_ci NULL DEFAULT 'x', ADD COLUMN"));
        assert!(
            create_table(&t).contains("`note` varchar(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,")
        );
        // An expression default cannot: those columns are named.
        t.columns[3].default_computed = true;
        t.columns[0].default_computed = true;
        assert_eq!(computed_defaults_among_added(&t, &existing), ["n"]);
        assert!(computed_defaults_among_added(&t, &all).is_empty());
    }
}
