//! The tables of a SQLite file: their columns, keys (declared, `WITHOUT ROWID`, or the rowid)
//! and foreign keys, checked against the config.

use highwater_pipeline::schema::{ColumnSchema, ForeignKey, TableId, TableSchema};
use highwater_pipeline::source::SourceError;
use rusqlite::Connection;

use super::config::{OnTypeMismatch, SqliteTableConfig};
use super::types::Kind;
use super::{query_error, quote_sqlite};
use crate::epoch::EpochUnit;

/// How a table's rows are ordered between passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// No cursor: the table is copied whole on each run's first pass.
    None,
    /// ISO 8601 text.
    Text,
    /// An integer count of Unix time.
    Epoch(EpochUnit),
}

/// One table as found in the file.
#[derive(Clone, Debug)]
pub struct Found {
    pub schema: TableSchema,
    pub kinds: Vec<Kind>,
    /// Columns carried as text whatever their values (`on_type_mismatch = "text"`).
    pub as_text: Vec<bool>,
    /// The SQL that selects each column (`"name"`, or `_rowid_` for a table keyed by its rowid).
    pub exprs: Vec<String>,
    pub cursor: Cursor,
}

/// The name a table keyed by its rowid alone gives the rowid column.
pub const ROWID: &str = "rowid";

/// Every table of the file, parents before the tables whose foreign keys reference them
/// (cycles and self-references keep the file's order).
pub fn all_tables(conn: &Connection) -> Result<Vec<String>, SourceError> {
    let names = (|| {
        let mut s = conn.prepare(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        s.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(|e| query_error("the tables of the file".into(), e))?;
    let mut parents = Vec::new();
    for name in &names {
        let sql = format!("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list({})", quote_text(name));
        let found = (|| conn.prepare(&sql)?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())()
            .map_err(|e| query_error(format!("the foreign keys of {name}"), e))?;
        parents.push(found);
    }
    Ok(parents_first(&names, &parents))
}

/// `names` in an order where each comes after the names its `parents` list (Kahn's order,
/// ties in the given order); names caught in a cycle follow in the given order.
pub fn parents_first(names: &[String], parents: &[Vec<String>]) -> Vec<String> {
    let mut placed = vec![false; names.len()];
    let mut order = Vec::with_capacity(names.len());
    loop {
        let ready = (0..names.len()).find(|&i| {
            !placed[i]
                && parents[i].iter().all(|p| {
                    p.eq_ignore_ascii_case(&names[i])
                        || names.iter().zip(&placed).all(|(n, done)| *done || !n.eq_ignore_ascii_case(p))
                })
        });
        match ready {
            Some(i) => {
                placed[i] = true;
                order.push(names[i].clone());
            }
            None => break,
        }
    }
    let cycle: Vec<&String> = names.iter().zip(&placed).filter(|(_, done)| !**done).map(|(n, _)| n).collect();
    if !cycle.is_empty() {
        tracing::warn!(tables = ?cycle, "these tables reference each other in a cycle: they are read in name order");
    }
    order.extend(cycle.into_iter().cloned());
    order
}

/// One row of `PRAGMA table_xinfo`.
struct Info {
    name: String,
    declared: String,
    not_null: bool,
    default: Option<String>,
    pk: usize,
}

/// The table `config` names, as found in the file `database` (its name) holds. `key`: where
/// the table is configured (`source.tables[2]`).
pub fn discover(
    conn: &Connection,
    database: &str,
    config: &SqliteTableConfig,
    mismatch: OnTypeMismatch,
    key: &str,
) -> Result<Found, SourceError> {
    let id = TableId { database: database.to_owned(), table: config.name.clone() };
    let infos = columns(conn, &config.name)?;
    if infos.is_empty() {
        return Err(SourceError::MissingTable { table: id, key: format!("{key}.name") });
    }
    let mut declared_key: Vec<(usize, usize)> =
        infos.iter().enumerate().filter(|(_, c)| c.pk > 0).map(|(i, c)| (c.pk, i)).collect();
    declared_key.sort();
    let mut key_columns: Vec<usize> = declared_key.into_iter().map(|(_, i)| i).collect();
    let mut exprs: Vec<String> = infos.iter().map(|c| quote_sqlite(&c.name)).collect();
    let mut infos = infos;
    if key_columns.is_empty() {
        if infos.iter().any(|c| c.name.eq_ignore_ascii_case(ROWID)) {
            return Err(SourceError::NoPrimaryKey { table: id });
        }
        infos.insert(0, Info { name: ROWID.into(), declared: "INTEGER".into(), not_null: true, default: None, pk: 1 });
        exprs.insert(0, "_rowid_".into());
        key_columns = vec![0];
    }
    let cursor_index = match &config.cursor {
        None => None,
        Some(name) => Some(infos.iter().position(|c| c.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
            SourceError::MissingColumn { table: id.clone(), column: name.clone(), key: format!("{key}.cursor") }
        })?),
    };
    let (cursor, cursor_kind) = match (cursor_index, config.cursor_unit) {
        (None, _) => (Cursor::None, None),
        (Some(_), Some(unit)) => (Cursor::Epoch(unit), Some(Kind::Int)),
        (Some(i), None) => match Kind::of(&infos[i].declared) {
            Kind::Date => (Cursor::Text, Some(Kind::Date)),
            Kind::DateTime | Kind::Text | Kind::Blob => (Cursor::Text, Some(Kind::DateTime)),
            _ => {
                return Err(SourceError::UnsupportedCursor {
                    table: id,
                    column: infos[i].name.clone(),
                    column_type: infos[i].declared.clone(),
                    key: format!("{key}.cursor_unit"),
                });
            }
        },
    };
    let foreign_keys = foreign_keys(conn, &config.name)?;
    let referencing = |name: &str| foreign_keys.iter().any(|k| k.columns.iter().any(|c| c.eq_ignore_ascii_case(name)));
    let mut kinds = Vec::new();
    let mut as_text = Vec::new();
    let mut columns = Vec::new();
    for (i, c) in infos.iter().enumerate() {
        let in_key = key_columns.contains(&i);
        // A column of a foreign key takes its parent key's type: a sink can index and join it.
        let indexed = in_key || referencing(&c.name);
        let kind = if Some(i) == cursor_index { cursor_kind.unwrap_or(Kind::DateTime) } else { Kind::of(&c.declared) };
        let text = mismatch == OnTypeMismatch::Text && !in_key && Some(i) != cursor_index && kind != Kind::Text;
        let kind_shown = if text { Kind::Text } else { kind };
        let textual = matches!(kind_shown, Kind::Text);
        let (default, default_computed) = default_literal(c.default.as_deref());
        columns.push(ColumnSchema {
            name: c.name.clone(),
            source_type: kind_shown.sink_type(indexed),
            charset: (textual && indexed).then(|| "utf8mb4".to_owned()),
            collation: (textual && indexed).then(|| "utf8mb4_bin".to_owned()),
            source_nullable: !c.not_null && !in_key,
            data_type: kind_shown.arrow_type(),
            nullable: !in_key,
            default,
            default_computed,
        });
        kinds.push(kind);
        as_text.push(text);
    }
    let cursor_at = cursor_index.unwrap_or(key_columns[0]);
    let schema = TableSchema::new(id, columns, key_columns, cursor_at).with_foreign_keys(foreign_keys);
    Ok(Found { schema, kinds, as_text, exprs, cursor })
}

/// The foreign keys `table` declares, each with the parent columns it references (its parent's
/// primary key where the declaration names none).
fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKey>, SourceError> {
    type Part = (i64, String, String, Option<String>, String, String);
    let sql = format!(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list({}) ORDER BY id, seq",
        quote_text(table)
    );
    let parts: Vec<Part> = (|| {
        let mut s = conn.prepare(&sql)?;
        let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
        rows.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(|e| query_error(format!("the foreign keys of {table}"), e))?;
    let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in parts {
        if keys.last().is_none_or(|(last, _)| *last != id) {
            let action = |a: String| (!a.eq_ignore_ascii_case("NO ACTION")).then_some(a);
            let key = ForeignKey {
                columns: Vec::new(),
                parent,
                parent_columns: Vec::new(),
                on_delete: action(on_delete),
                on_update: action(on_update),
            };
            keys.push((id, key));
        }
        let (_, key) = keys.last_mut().expect("pushed");
        key.columns.push(from);
        key.parent_columns.extend(to);
    }
    let mut found = Vec::new();
    for (_, mut key) in keys {
        if key.parent_columns.is_empty() {
            key.parent_columns = primary_key(conn, &key.parent)?;
        }
        found.push(key);
    }
    Ok(found)
}

/// The declared primary key columns of `table`, in key order.
fn primary_key(conn: &Connection, table: &str) -> Result<Vec<String>, SourceError> {
    let sql = format!("SELECT name FROM pragma_table_info({}) WHERE pk > 0 ORDER BY pk", quote_text(table));
    (|| conn.prepare(&sql)?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())()
        .map_err(|e| query_error(format!("the primary key of {table}"), e))
}

/// The table's columns (generated ones included, hidden ones of virtual tables not).
fn columns(conn: &Connection, table: &str) -> Result<Vec<Info>, SourceError> {
    let sql = format!(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo({}) WHERE hidden <> 1 ORDER BY cid",
        quote_text(table)
    );
    (|| {
        let mut s = conn.prepare(&sql)?;
        let rows = s.query_map([], |r| {
            Ok(Info {
                name: r.get(0)?,
                declared: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                not_null: r.get(2)?,
                default: r.get(3)?,
                pk: r.get(4)?,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(|e| query_error(format!("the columns of {table}"), e))
}

/// A default as a SQL literal when it is a constant (`'x'`, `0`, `-1.5`), and whether it is an
/// expression (`CURRENT_TIMESTAMP`, `(datetime('now'))`).
fn default_literal(default: Option<&str>) -> (Option<String>, bool) {
    let Some(d) = default.map(str::trim).filter(|d| !d.eq_ignore_ascii_case("null")) else {
        return (None, false);
    };
    let quoted = d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'');
    let number = d.trim_start_matches(['-', '+']).parse::<f64>().is_ok_and(f64::is_finite);
    if quoted || number { (Some(d.to_owned()), false) } else { (None, true) }
}

/// `text` as a SQL string literal (for table-valued pragma arguments).
pub fn quote_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parents_come_first_and_cycles_keep_their_order() {
        let tables = names(&["api_keys", "sessions", "usage_stats", "users"]);
        let parents = vec![names(&["users"]), names(&["users"]), names(&["api_keys", "usage_stats"]), vec![]];
        assert_eq!(parents_first(&tables, &parents), names(&["users", "api_keys", "sessions", "usage_stats"]));
        let cycle = vec![names(&["b"]), names(&["a"]), vec![]];
        assert_eq!(parents_first(&names(&["a", "b", "c"]), &cycle), names(&["c", "a", "b"]));
        // A parent the file does not hold (a dangling reference) does not hold its child back.
        assert_eq!(parents_first(&names(&["a"]), &[names(&["gone"])]), names(&["a"]));
    }

    #[test]
    fn constant_defaults_are_literals_and_expressions_are_named_so() {
        assert_eq!(default_literal(Some("'x'")), (Some("'x'".into()), false));
        assert_eq!(default_literal(Some("-1.5")), (Some("-1.5".into()), false));
        assert_eq!(default_literal(Some("CURRENT_TIMESTAMP")), (None, true));
        assert_eq!(default_literal(Some("(datetime('now'))")), (None, true));
        assert_eq!(default_literal(Some("NULL")), (None, false));
        assert_eq!(default_literal(None), (None, false));
    }

    #[test]
    fn keys_are_declared_without_rowid_or_the_rowid() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE a (x TEXT, id INTEGER PRIMARY KEY, at TEXT);
             CREATE TABLE b (k1 TEXT, k2 INT, v BLOB, PRIMARY KEY (k2, k1)) WITHOUT ROWID;
             CREATE TABLE c (v, n REAL);",
        )
        .expect("schema");
        let config = |name: &str, cursor: Option<&str>| SqliteTableConfig {
            name: name.into(),
            cursor: cursor.map(Into::into),
            cursor_unit: None,
            on_type_mismatch: None,
        };
        let a = discover(&conn, "f", &config("a", Some("at")), OnTypeMismatch::Fail, "t").expect("a");
        assert_eq!((a.schema.key.clone(), a.schema.cursor, a.cursor), (vec![1], 2, Cursor::Text));
        assert_eq!(a.schema.columns[2].source_type, "datetime(6)");
        let b = discover(&conn, "f", &config("b", None), OnTypeMismatch::Text, "t").expect("b");
        let key: Vec<&str> = b.schema.key_columns().map(|c| c.source_type.as_str()).collect();
        assert_eq!(key, ["bigint", "varchar(255)"]);
        assert_eq!((b.as_text.clone(), b.cursor), (vec![false, false, true], Cursor::None));
        let c = discover(&conn, "f", &config("c", None), OnTypeMismatch::Fail, "t").expect("c");
        assert_eq!((c.schema.columns[0].name.as_str(), c.exprs[0].as_str()), (ROWID, "_rowid_"));
        let missing = discover(&conn, "f", &config("nope", None), OnTypeMismatch::Fail, "t").expect_err("missing");
        assert!(missing.to_string().contains("f.nope does not exist: check t.name"), "{missing}");
        let bad = discover(&conn, "f", &config("c", Some("n")), OnTypeMismatch::Fail, "t").expect_err("real cursor");
        assert!(bad.to_string().contains("cursor column n is REAL"), "{bad}");
    }

    #[test]
    fn foreign_keys_are_read_with_their_parent_columns_and_type_their_columns_like_keys() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT);
             CREATE TABLE pairs (a INTEGER, b TEXT, PRIMARY KEY (a, b));
             CREATE TABLE api_keys (id INTEGER PRIMARY KEY, owner TEXT REFERENCES users ON DELETE CASCADE,
               pa INTEGER, pb TEXT, note TEXT,
               FOREIGN KEY (pa, pb) REFERENCES pairs (a, b) ON UPDATE SET NULL);",
        )
        .expect("schema");
        let config =
            SqliteTableConfig { name: "api_keys".into(), cursor: None, cursor_unit: None, on_type_mismatch: None };
        let found = discover(&conn, "f", &config, OnTypeMismatch::Fail, "t").expect("api_keys");
        let mut keys = found.schema.foreign_keys.clone();
        keys.sort_by(|x, y| x.parent.cmp(&y.parent));
        assert_eq!(
            keys,
            [
                ForeignKey {
                    columns: names(&["pa", "pb"]),
                    parent: "pairs".into(),
                    parent_columns: names(&["a", "b"]),
                    on_delete: None,
                    on_update: Some("SET NULL".into()),
                },
                ForeignKey {
                    columns: names(&["owner"]),
                    parent: "users".into(),
                    parent_columns: names(&["id"]),
                    on_delete: Some("CASCADE".into()),
                    on_update: None,
                },
            ]
        );
        let types: Vec<&str> = found.schema.columns.iter().map(|c| c.source_type.as_str()).collect();
        assert_eq!(types, ["bigint", "varchar(255)", "bigint", "varchar(255)", "longtext"], "joined like the keys");
        assert!(found.schema.columns[1].nullable, "a foreign key column keeps its NULLs");
        let wire = TableSchema::from_json(&found.schema.to_json()).expect("wire");
        assert_eq!(wire.foreign_keys.len(), 2, "the keys travel with the schema");
    }
}
