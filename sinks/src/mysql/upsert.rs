//! Version-guarded multi-row upserts and deletes.
//!
//! ```sql
//! INSERT INTO t (k, a, c) VALUES (...), (...)
//! ON DUPLICATE KEY UPDATE
//!   a = IF(c IS NULL OR VALUES(c) >= c, VALUES(a), a),
//!   c = IF(c IS NULL OR VALUES(c) >= c, VALUES(c), c)
//! ```
//!
//! A stored row is only replaced by a version whose cursor is greater or equal, so a replayed
//! or reordered batch never moves a row back in time. The cursor column is assigned last:
//! MySQL evaluates the assignments in order, and the guard must see the old cursor.

use arrow_array::{ArrayRef, RecordBatch};
use highwater_pipeline::ident::quote;
use highwater_pipeline::schema::TableSchema;

use super::literal;

/// Statement text limit, far below the 16 MiB default `max_allowed_packet` of MariaDB.
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// What a packet holds besides the statement's text (the header and command byte), with room.
const PACKET_OVERHEAD: usize = 1024;

/// The longest statement for a server whose `max_allowed_packet` is `packet`.
pub fn statement_limit(packet: Option<u64>) -> usize {
    let packet = packet.map_or(usize::MAX, |p| usize::try_from(p).unwrap_or(usize::MAX));
    MAX_STATEMENT_BYTES.min(packet.saturating_sub(PACKET_OVERHEAD)).max(1)
}

/// The fixed parts of a table's upsert.
pub struct UpsertSql {
    head: String,
    tail: String,
    delete_head: String,
    delete_guard: String,
}

impl UpsertSql {
    pub fn new(table: &TableSchema) -> Self {
        let names: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let cursor = &names[table.cursor];
        let guard = format!("{cursor} IS NULL OR VALUES({cursor}) >= {cursor}");
        let mut updates: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| !table.key.contains(i) && *i != table.cursor)
            .map(|(_, n)| format!("{n} = IF({guard}, VALUES({n}), {n})"))
            .collect();
        if !table.key.contains(&table.cursor) {
            updates.push(format!("{cursor} = IF({guard}, VALUES({cursor}), {cursor})"));
        }
        if updates.is_empty() {
            // Every column is in the key: a duplicate is the same row.
            updates.push(format!("{0} = {0}", names[table.key[0]]));
        }
        UpsertSql {
            head: format!("INSERT INTO {} ({}) VALUES ", quote(&table.id.table), names.join(", ")),
            tail: format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", ")),
            delete_head: format!("DELETE FROM {} WHERE ", quote(&table.id.table)),
            delete_guard: cursor.clone(),
        }
    }

    /// Upsert statements for `rows[range]`, each at most `max_rows` rows and `max_bytes` long.
    /// A row that alone makes a statement longer than `max_bytes` is an error naming the row
    /// and the server setting to raise.
    pub fn upserts(
        &self,
        table: &TableSchema,
        rows: &RecordBatch,
        range: std::ops::Range<usize>,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Vec<String>, String> {
        let columns = rows.columns();
        let mut statements = Vec::new();
        let mut sql = String::new();
        let mut values = String::new();
        let mut in_statement = 0;
        for row in range {
            values.clear();
            push_row(&mut values, columns, row)?;
            let alone = self.head.len() + values.len() + self.tail.len();
            if alone > max_bytes {
                return Err(too_large(table, columns, row, alone, max_bytes));
            }
            if in_statement > 0
                && (in_statement >= max_rows || sql.len() + 1 + values.len() + self.tail.len() > max_bytes)
            {
                sql.push_str(&self.tail);
                statements.push(std::mem::take(&mut sql));
                in_statement = 0;
            }
            if in_statement == 0 {
                sql.push_str(&self.head);
            } else {
                sql.push(',');
            }
            sql.push_str(&values);
            in_statement += 1;
        }
        if in_statement > 0 {
            sql.push_str(&self.tail);
            statements.push(sql);
        }
        Ok(statements)
    }

    /// One guarded delete per row of `rows[range]`: the row goes unless the sink holds a
    /// newer version of it.
    pub fn deletes(
        &self,
        table: &TableSchema,
        rows: &RecordBatch,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<String>, String> {
        let columns = rows.columns();
        range
            .map(|row| {
                let mut sql = self.delete_head.clone();
                for (n, &k) in table.key.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(" AND ");
                    }
                    sql.push_str(&quote(&table.columns[k].name));
                    sql.push_str(" = ");
                    literal::push(&mut sql, &columns[k], row)?;
                }
                let c = &self.delete_guard;
                sql.push_str(&format!(" AND ({c} IS NULL OR {c} <= "));
                literal::push(&mut sql, &columns[table.cursor], row)?;
                sql.push(')');
                Ok(sql)
            })
            .collect()
    }
}

/// The error of a row too large for one statement: its key (numbers shown, text by length, as
/// positions show them) and the setting to raise.
fn too_large(table: &TableSchema, columns: &[ArrayRef], row: usize, bytes: usize, max_bytes: usize) -> String {
    let key: Vec<String> = table
        .key
        .iter()
        .map(|&k| {
            let mut v = String::new();
            let _ = literal::push(&mut v, &columns[k], row);
            let c = &table.columns[k].name;
            if v.starts_with(['\'', '_', 'X']) { format!("{c} = <{} bytes>", v.len()) } else { format!("{c} = {v}") }
        })
        .collect();
    format!(
        "the row with {} is {bytes} bytes as an upsert statement, above what the sink server takes \
         (max_allowed_packet, less {PACKET_OVERHEAD} bytes: {max_bytes}): raise max_allowed_packet on the sink \
         (SET GLOBAL max_allowed_packet = {}) and run again; the checkpoint stays before it",
        key.join(", "),
        (bytes + PACKET_OVERHEAD).next_power_of_two()
    )
}

fn push_row(sql: &mut String, columns: &[ArrayRef], row: usize) -> Result<(), String> {
    sql.push('(');
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        literal::push(sql, column, row)?;
    }
    sql.push(')');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, TimestampMicrosecondArray};
    use arrow_schema::DataType;
    use highwater_pipeline::schema::{ColumnSchema, TableId};
    use std::sync::Arc;

    fn table() -> TableSchema {
        let col = |name: &str, data_type: DataType| ColumnSchema {
            name: name.into(),
            source_type: String::new(),
            charset: None,
            collation: None,
            source_nullable: true,
            data_type,
            nullable: true,
            default: None,
            default_computed: false,
        };
        TableSchema::new(
            TableId { database: "d".into(), table: "t".into() },
            vec![
                col("id", DataType::Int32),
                col("update_time", DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)),
                col("qty", DataType::Int32),
            ],
            vec![0],
            1,
        )
    }

    fn rows(t: &TableSchema) -> RecordBatch {
        RecordBatch::try_new(
            t.arrow.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(0), None, Some(1)])),
                Arc::new(Int32Array::from(vec![Some(5), None, Some(7)])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn guard_assigns_the_cursor_last_and_chunks_by_rows() {
        let t = table();
        let sql = UpsertSql::new(&t).upserts(&t, &rows(&t), 0..3, 2, MAX_STATEMENT_BYTES).expect("renders");
        assert_eq!(sql.len(), 2);
        assert_eq!(
            sql[0],
            "INSERT INTO `t` (`id`, `update_time`, `qty`) VALUES (1,'1970-01-01 00:00:00.000000',5),(2,NULL,NULL) \
             ON DUPLICATE KEY UPDATE `qty` = IF(`update_time` IS NULL OR VALUES(`update_time`) >= `update_time`, \
             VALUES(`qty`), `qty`), `update_time` = IF(`update_time` IS NULL OR VALUES(`update_time`) >= \
             `update_time`, VALUES(`update_time`), `update_time`)"
        );
        assert!(sql[1].contains("VALUES (3,'1970-01-01 00:00:00.000001',7) ON DUPLICATE"));
    }

    #[test]
    fn statements_stay_below_the_packet_and_a_row_above_it_is_named() {
        let t = table();
        let sql = UpsertSql::new(&t);
        let all = sql.upserts(&t, &rows(&t), 0..3, 100, MAX_STATEMENT_BYTES).expect("renders");
        assert_eq!(all.len(), 1);
        let one_row = sql.upserts(&t, &rows(&t), 0..1, 100, MAX_STATEMENT_BYTES).expect("renders")[0].len();
        // Room for two rows but not three: two statements, each within the limit.
        let limit = all[0].len() - 5;
        let split = sql.upserts(&t, &rows(&t), 0..3, 100, limit).expect("renders");
        assert_eq!(split.len(), 2);
        assert!(split.iter().all(|s| s.len() <= limit), "{split:?}");
        let err = sql.upserts(&t, &rows(&t), 0..3, 100, one_row - 1).expect_err("too large");
        assert!(err.starts_with("the row with id = 1 is "), "{err}");
        assert!(err.contains("max_allowed_packet"), "{err}");
        assert_eq!(statement_limit(Some(16 << 20)), MAX_STATEMENT_BYTES);
        assert_eq!(statement_limit(Some(1 << 20)), (1 << 20) - PACKET_OVERHEAD);
        assert_eq!(statement_limit(None), MAX_STATEMENT_BYTES);
    }

    #[test]
    fn deletes_spare_newer_versions() {
        let t = table();
        let sql = UpsertSql::new(&t).deletes(&t, &rows(&t), 0..1).expect("renders");
        assert_eq!(
            sql,
            [
                "DELETE FROM `t` WHERE `id` = 1 AND (`update_time` IS NULL OR `update_time` <= '1970-01-01 00:00:00.000000')"
            ]
        );
    }
}
