//! The source's foreign keys, recreated in the target once the tables they join are copied
//! (`sink.foreign_keys = true`).
//!
//! Target tables are created without foreign keys: TiDB handles them differently, and batches
//! load in any order with `FOREIGN_KEY_CHECKS = 0`. A move wants them back. Once a table and
//! every table its keys reference have caught up to a pass's bound (the runner's `caught_up`:
//! all their rows up to it are durable), each key the target lacks is first checked, then
//! added:
//!
//! 1. rows whose key columns are all set and match no row of the parent are counted; any such
//!    row stops the run, naming the table, the key, the count and one row's key (a SQLite file
//!    checks foreign keys only when its application turned them on);
//! 2. `ALTER TABLE ... ADD CONSTRAINT hw_fk_<table>_<n> FOREIGN KEY ... REFERENCES ...` with
//!    the source's `ON DELETE` / `ON UPDATE` actions, the name deterministic so that a later
//!    run finds it present and adds nothing.
//!
//! The sink's own sessions keep `FOREIGN_KEY_CHECKS = 0`, so later changes load in any table
//! order; the application's sessions are checked. Only keys that reference their parent's
//! primary key (all of it, or its leading columns) are recreated: the target indexes nothing
//! else. Others are named in a warning.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use highwater_pipeline::ident::quote;
use highwater_pipeline::schema::{ForeignKey, TableId, TableSchema};
use highwater_pipeline::sink::SinkError;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// The longest identifier MySQL takes.
const MAX_NAME: usize = 64;

const EXISTING: &str = "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
     WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// What the sink knows of the tables' foreign keys, and which tables are done.
#[derive(Default)]
pub struct ForeignKeys {
    wanted: bool,
    /// The tables prepared, by target name.
    tables: HashMap<String, Arc<TableSchema>>,
    /// Tables whose rows up to a pass's bound are all in the target.
    complete: HashSet<String>,
    /// Tables whose keys are in the target (or were named as not recreated).
    done: HashSet<String>,
}

impl ForeignKeys {
    pub fn new(wanted: bool) -> Self {
        ForeignKeys { wanted, ..Default::default() }
    }

    /// Whether `sink.foreign_keys` asked for them.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Takes the schemas of tables prepared in the target.
    pub fn know(&mut self, tables: &[Arc<TableSchema>]) {
        if self.wanted {
            self.tables.extend(tables.iter().map(|t| (t.id.table.clone(), t.clone())));
        }
    }

    /// `table` is complete in the target: adds the keys of every table that now has itself
    /// and its parents complete.
    pub async fn caught_up(&mut self, conn: &mut Conn, table: &TableId) -> Result<(), SinkError> {
        self.complete.insert(table.table.clone());
        let mut ready: Vec<Arc<TableSchema>> = (self.tables.values())
            .filter(|t| !self.done.contains(&t.id.table) && self.complete.contains(&t.id.table))
            .filter(|t| {
                t.foreign_keys.iter().all(|k| self.parent(k).is_none_or(|p| self.complete.contains(&p.id.table)))
            })
            .cloned()
            .collect();
        ready.sort_by(|a, b| a.id.cmp(&b.id));
        for t in ready {
            self.recreate(conn, &t).await?;
            self.done.insert(t.id.table.clone());
        }
        Ok(())
    }

    /// The prepared table `key` references (SQLite compares names without case).
    fn parent(&self, key: &ForeignKey) -> Option<&Arc<TableSchema>> {
        self.tables
            .get(&key.parent)
            .or_else(|| self.tables.values().find(|t| t.id.table.eq_ignore_ascii_case(&key.parent)))
    }

    async fn recreate(&self, conn: &mut Conn, table: &TableSchema) -> Result<(), SinkError> {
        if table.foreign_keys.is_empty() {
            return Ok(());
        }
        let existing: Vec<String> = conn
            .exec(EXISTING, (&table.id.table,))
            .await
            .map_err(|e| db_error(&table.id, "reading its foreign keys", e))?;
        for (n, key) in table.foreign_keys.iter().enumerate() {
            let name = constraint_name(&table.id.table, n + 1);
            if existing.iter().any(|e| e.eq_ignore_ascii_case(&name)) {
                continue;
            }
            let Some(parent) = self.parent(key) else {
                tracing::warn!(table = %table.id, parent = %key.parent, "foreign key not recreated: its parent is not a table of this pipeline");
                continue;
            };
            if !references_key(key, parent) {
                tracing::warn!(
                    table = %table.id, columns = ?key.columns, parent = %key.parent,
                    "foreign key not recreated: it references columns that are not the parent's primary key"
                );
                continue;
            }
            refuse_orphans(conn, table, key, &parent.id.table).await?;
            let sql = add_constraint(&table.id.table, &name, key, &parent.id.table);
            conn.query_drop(&sql)
                .await
                .map_err(|e| db_error(&table.id, &format!("adding its foreign key {name}"), e))?;
            tracing::info!(table = %table.id, constraint = %name, parent = %parent.id.table, "foreign key recreated");
        }
        Ok(())
    }
}

/// Whether `key` references its parent's primary key, all of it or its leading columns.
fn references_key(key: &ForeignKey, parent: &TableSchema) -> bool {
    let pk: Vec<&str> = parent.key_columns().map(|c| c.name.as_str()).collect();
    !key.parent_columns.is_empty()
        && key.parent_columns.len() <= pk.len()
        && key.parent_columns.iter().zip(&pk).all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// Counts the rows of `table` that `key` finds no parent row for; any is an error naming one.
async fn refuse_orphans(conn: &mut Conn, table: &TableSchema, key: &ForeignKey, parent: &str) -> Result<(), SinkError> {
    let (count, example) = orphan_queries(table, key, parent);
    let what = format!("checking its foreign key to {parent}");
    let orphans: Option<u64> = conn.query_first(&count).await.map_err(|e| db_error(&table.id, &what, e))?;
    let orphans = orphans.unwrap_or(0);
    if orphans == 0 {
        return Ok(());
    }
    let row: Option<mysql_async::Row> = conn.query_first(&example).await.map_err(|e| db_error(&table.id, &what, e))?;
    let shown = row.map(|r| (0..r.len()).map(|i| r.as_ref(i).map(key_text).unwrap_or_default()).collect::<Vec<_>>());
    Err(SinkError::Data {
        table: table.id.clone(),
        reason: format!(
            "foreign key ({}) references {parent} ({}), and {orphans} row(s) match no row there (the first by key: {}); \
             the source did not enforce it. Delete or fix those rows, or set sink.foreign_keys = false",
            key.columns.join(", "),
            key.parent_columns.join(", "),
            shown.map(|v| v.join(", ")).unwrap_or_default()
        ),
    })
}

/// A key value as text: the text protocol brings every value as bytes.
fn key_text(v: &mysql_async::Value) -> String {
    match v {
        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.as_sql(true),
    }
}

/// The statements that count the orphans of `key` and show the first one's key.
fn orphan_queries(table: &TableSchema, key: &ForeignKey, parent: &str) -> (String, String) {
    let set: Vec<String> = key.columns.iter().map(|c| format!("c.{} IS NOT NULL", quote(c))).collect();
    let joined: Vec<String> = (key.columns.iter().zip(&key.parent_columns))
        .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
        .collect();
    let from = format!(
        "FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
        quote(&table.id.table),
        set.join(" AND "),
        quote(parent),
        joined.join(" AND ")
    );
    let keys: Vec<String> = table.key_columns().map(|c| format!("c.{}", quote(&c.name))).collect();
    (
        format!("SELECT COUNT(*) {from}"),
        format!("SELECT {} {from} ORDER BY {} LIMIT 1", keys.join(", "), keys.join(", ")),
    )
}

/// `ALTER TABLE` adding `key` to `table` as constraint `name`.
fn add_constraint(table: &str, name: &str, key: &ForeignKey, parent: &str) -> String {
    let list = |cols: &[String]| cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let mut sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        quote(table),
        quote(name),
        list(&key.columns),
        quote(parent),
        list(&key.parent_columns)
    );
    for (clause, action) in [("ON DELETE", &key.on_delete), ("ON UPDATE", &key.on_update)] {
        match action.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("NO ACTION") => {}
            Some(a @ ("CASCADE" | "SET NULL" | "RESTRICT")) => sql.push_str(&format!(" {clause} {a}")),
            Some(other) => {
                tracing::warn!(table, constraint = name, "{clause} {other} is not recreated: InnoDB does not take it")
            }
        }
    }
    sql
}

/// `hw_fk_<table>_<n>`, within MySQL's 64 characters: a long table name is cut and a hash of
/// it keeps names apart.
fn constraint_name(table: &str, n: usize) -> String {
    let name = format!("hw_fk_{table}_{n}");
    if name.chars().count() <= MAX_NAME {
        return name;
    }
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let tail = format!("_{:08x}_{n}", hash as u32);
    let head: String = format!("hw_fk_{table}").chars().take(MAX_NAME - tail.len()).collect();
    format!("{head}{tail}")
}

fn db_error(table: &TableId, what: &str, e: mysql_async::Error) -> SinkError {
    let retryable = highwater_mysql::is_retryable(&e);
    SinkError::Database { what: format!("{what} of {table}"), retryable, source: Box::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use highwater_pipeline::schema::ColumnSchema;

    fn fk(columns: &[&str], parent: &str, parent_columns: &[&str]) -> ForeignKey {
        ForeignKey {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            parent: parent.into(),
            parent_columns: parent_columns.iter().map(|c| c.to_string()).collect(),
            on_delete: Some("CASCADE".into()),
            on_update: Some("SET DEFAULT".into()),
        }
    }

    fn table(name: &str, columns: &[&str], key: Vec<usize>) -> TableSchema {
        let columns = columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.to_string(),
                source_type: "bigint".into(),
                charset: None,
                collation: None,
                source_nullable: false,
                data_type: arrow_schema::DataType::Int64,
                nullable: false,
                default: None,
                default_computed: false,
            })
            .collect();
        TableSchema::new(TableId { database: "d".into(), table: name.into() }, columns, key, 0)
    }

    #[test]
    fn a_key_is_recreated_only_when_it_references_the_parents_primary_key() {
        let parent = table("users", &["tenant", "id", "email"], vec![0, 1]);
        assert!(references_key(&fk(&["t", "u"], "users", &["tenant", "id"]), &parent));
        assert!(references_key(&fk(&["t"], "users", &["TENANT"]), &parent), "a leading part, any case");
        assert!(!references_key(&fk(&["u"], "users", &["id"]), &parent), "not the leading column");
        assert!(!references_key(&fk(&["e"], "users", &["email"]), &parent));
        assert!(!references_key(&fk(&["e"], "users", &[]), &parent));
    }

    #[test]
    fn the_statements_quote_every_name_and_keep_the_actions_innodb_takes() {
        let key = fk(&["user id"], "us`ers", &["id"]);
        let sql = add_constraint("api_keys", "hw_fk_api_keys_1", &key, "us`ers");
        assert_eq!(
            sql,
            "ALTER TABLE `api_keys` ADD CONSTRAINT `hw_fk_api_keys_1` FOREIGN KEY (`user id`) \
             REFERENCES `us``ers` (`id`) ON DELETE CASCADE"
        );
        let child = table("api_keys", &["id", "user id"], vec![0]);
        let (count, example) = orphan_queries(&child, &key, "us`ers");
        assert_eq!(
            count,
            "SELECT COUNT(*) FROM `api_keys` c WHERE c.`user id` IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM `us``ers` p WHERE p.`id` = c.`user id`)"
        );
        assert!(example.starts_with("SELECT c.`id` FROM `api_keys` c WHERE"), "{example}");
        assert!(example.ends_with("ORDER BY c.`id` LIMIT 1"), "{example}");
    }

    #[test]
    fn constraint_names_fit_64_characters_and_stay_apart() {
        assert_eq!(constraint_name("api_keys", 2), "hw_fk_api_keys_2");
        let long_a = "a".repeat(70);
        let long_b = format!("{}b", "a".repeat(69));
        let (a, b) = (constraint_name(&long_a, 1), constraint_name(&long_b, 1));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, constraint_name(&long_a, 1), "the same name on every run");
        let wide = "表".repeat(40);
        assert!(constraint_name(&wide, 3).chars().count() <= MAX_NAME);
    }
}
