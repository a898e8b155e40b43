//! The keyset statements of one SQLite table (never OFFSET). Each names its parameters in
//! order: bounds, a cursor, then the key's values.

use super::discover::{Cursor, Found};

/// The statements of one table.
#[derive(Clone, Debug)]
pub struct Queries {
    /// The rows a page query returns at most.
    pub limit: usize,
    /// Rows by key from the start: `(bound)` for a cursor table, `()` for a whole copy.
    pub copy_first: String,
    /// Rows by key after a key: `(bound, key...)` or `(key...)`.
    pub copy_after: String,
    /// The highest `(cursor, key)` at or below a bound: `(bound)`.
    pub handover: String,
    /// The highest key among rows whose cursor is NULL.
    pub highest_null: String,
    /// Rows whose cursor is NULL with a key above: `(key...)`.
    pub nulls_after: String,
    /// Rows whose cursor is NULL, from the first key.
    pub nulls_first: String,
    /// Rows after `(cursor, key)` up to a bound: `(cursor, key..., bound)`.
    pub cursor_after: String,
    /// Rows above a cursor value up to a bound: `(cursor, bound)`.
    pub cursor_above: String,
    /// The lowest and the highest cursor values.
    pub lowest: String,
    pub highest: String,
}

impl Queries {
    pub fn new(t: &Found, table_sql: &str, limit: usize) -> Queries {
        let select = format!("SELECT {} FROM {table_sql}", t.exprs.join(", "));
        let keys: Vec<&str> = t.schema.key.iter().map(|&i| t.exprs[i].as_str()).collect();
        let by_key = keys.join(", ");
        let key_row = format!("({by_key})");
        let key_after = format!("{key_row} > ({})", vec!["?"; keys.len()].join(", "));
        let c = &t.exprs[t.schema.cursor];
        let desc: Vec<String> = keys.iter().map(|k| format!("{k} DESC")).collect();
        let desc = desc.join(", ");
        let copied = match t.cursor {
            Cursor::None => String::new(),
            _ => format!("({c} IS NULL OR {c} <= ?) AND "),
        };
        let numbered: Vec<String> = (0..keys.len()).map(|i| format!("?{}", i + 2)).collect();
        Queries {
            limit,
            copy_first: format!(
                "{select}{} ORDER BY {by_key} LIMIT {limit}",
                if copied.is_empty() { String::new() } else { format!(" WHERE {}", copied.trim_end_matches(" AND ")) }
            ),
            copy_after: format!("{select} WHERE {copied}{key_after} ORDER BY {by_key} LIMIT {limit}"),
            handover: format!("SELECT {c}, {by_key} FROM {table_sql} WHERE {c} <= ? ORDER BY {c} DESC, {desc} LIMIT 1"),
            highest_null: format!("SELECT {by_key} FROM {table_sql} WHERE {c} IS NULL ORDER BY {desc} LIMIT 1"),
            nulls_after: format!("{select} WHERE {c} IS NULL AND {key_after} ORDER BY {by_key} LIMIT {limit}"),
            nulls_first: format!("{select} WHERE {c} IS NULL ORDER BY {by_key} LIMIT {limit}"),
            // `c >= ?1` first, so that the cursor's index bounds the range.
            cursor_after: format!(
                "{select} WHERE {c} >= ?1 AND ({c} > ?1 OR {key_row} > ({})) AND {c} <= ? ORDER BY {c}, {by_key} \
                 LIMIT {limit}",
                numbered.join(", ")
            ),
            cursor_above: format!("{select} WHERE {c} > ? AND {c} <= ? ORDER BY {c}, {by_key} LIMIT {limit}"),
            lowest: format!("SELECT {c} FROM {table_sql} WHERE {c} IS NOT NULL ORDER BY {c} LIMIT 1"),
            highest: format!("SELECT {c} FROM {table_sql} WHERE {c} IS NOT NULL ORDER BY {c} DESC LIMIT 1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::config::{OnTypeMismatch, SqliteTableConfig};
    use crate::sqlite::discover::discover;
    use rusqlite::Connection;

    #[test]
    fn every_read_is_a_keyset_range_served_by_an_index() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE t (k1 TEXT, k2 INTEGER, at TEXT, v REAL, PRIMARY KEY (k1, k2));
             CREATE INDEX t_at ON t (at, k1, k2);",
        )
        .expect("schema");
        let config = SqliteTableConfig {
            name: "t".into(),
            cursor: Some("at".into()),
            cursor_unit: None,
            on_type_mismatch: None,
        };
        let found = discover(&conn, "f", &config, OnTypeMismatch::Fail, "t").expect("found");
        let q = Queries::new(&found, "\"t\"", 100);
        assert_eq!(
            q.cursor_after,
            "SELECT \"k1\", \"k2\", \"at\", \"v\" FROM \"t\" WHERE \"at\" >= ?1 AND (\"at\" > ?1 OR (\"k1\", \"k2\") > \
             (?2, ?3)) AND \"at\" <= ? ORDER BY \"at\", \"k1\", \"k2\" LIMIT 100"
        );
        let plan = |sql: &str| -> String {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .and_then(|mut s| {
                    let nulls = vec![rusqlite::types::Value::Null; s.parameter_count()];
                    s.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?.collect()
                })
                .expect("plan");
            plan.join("; ")
        };
        // A copy walks the key's index from its start, the others seek into a range; none sorts.
        for sql in [&q.copy_first, &q.copy_after, &q.cursor_after, &q.cursor_above, &q.nulls_after, &q.handover] {
            assert!(!sql.contains("OFFSET"), "{sql}");
            let plan = plan(sql);
            assert!(plan.contains(" INDEX ") || plan.contains("USING PRIMARY KEY"), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
            if sql != &q.copy_first {
                assert!(plan.starts_with("SEARCH"), "{sql}: {plan}");
            }
        }
    }
}
