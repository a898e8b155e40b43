//! The SQLite source: a file shaped like an API gateway's (the migration users asked for) into
//! MariaDB and Parquet, row for row, with a writer at work in WAL mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mysql_async::prelude::Queryable;
use rusqlite::Connection;

use crate::harness::{Pipeline, TestDb, assert_same_rows, mysql_sink, read_parquet};

/// The gateway's tables as the config names them: (name, cursor settings).
const TABLES: [(&str, &str); 5] = [
    ("users", "cursor = \"updated_at\""),
    ("api_keys", "cursor = \"updated_at\", cursor_unit = \"milliseconds\""),
    ("accounts", "cursor = \"updated_at\""),
    ("usage_stats", "cursor = \"at\""),
    ("sessions", ""),
];

const USAGE_ROWS: u32 = 200_000;

/// A gateway database: users; api_keys (text keys) referencing users, with a millisecond
/// epoch cursor; accounts `WITHOUT ROWID` with a second-precision cursor; usage_stats
/// referencing api_keys (200,000 rows over seven years, 1% with a NULL cursor); sessions keyed
/// by the rowid alone, with an untyped column and no cursor.
fn gateway(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, is_admin BOOLEAN,
           balance DECIMAL(12,2), created_at DATETIME, updated_at TEXT NOT NULL);
         CREATE TABLE api_keys (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
           key_hash BLOB NOT NULL, label VARCHAR(64), created_at DATETIME, updated_at INTEGER NOT NULL);
         CREATE TABLE accounts (user_id INTEGER NOT NULL REFERENCES users(id), provider TEXT NOT NULL,
           token TEXT, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
           PRIMARY KEY (user_id, provider)) WITHOUT ROWID;
         CREATE TABLE usage_stats (id INTEGER PRIMARY KEY AUTOINCREMENT,
           api_key_id TEXT NOT NULL REFERENCES api_keys(id), tokens INTEGER NOT NULL, cost REAL, day DATE, at TEXT);
         CREATE TABLE sessions (token TEXT, user_id INTEGER, expires INTEGER, data);
         CREATE INDEX users_updated ON users (updated_at);
         CREATE INDEX api_keys_updated ON api_keys (updated_at);
         CREATE INDEX accounts_updated ON accounts (updated_at);
         CREATE INDEX usage_at ON usage_stats (at);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
         INSERT INTO users SELECT i, 'user' || i || '@example.com',
           CASE WHEN i % 7 = 0 THEN NULL ELSE 'Nutzer ' || i || ' ✓ 用户' END, i % 10 = 0,
           (i * 3779 % 1000000) / 100.0, datetime(1546300800 + i * 86400, 'unixepoch'),
           strftime('%Y-%m-%dT%H:%M:%fZ', 1546300800 + (i * 110017 % 220000000) + (i % 1000) / 1000.0, 'unixepoch')
         FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 4000)
         INSERT INTO api_keys SELECT printf('key-%06d', i), 1 + (i * i) % 2000, randomblob(32),
           CASE WHEN i % 3 = 0 THEN NULL ELSE 'label ' || i END, datetime(1546300800 + i * 3600, 'unixepoch'),
           (1546300800 + (i * 104729 % 220000000)) * 1000 + i % 1000
         FROM s;
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 2999)
         INSERT INTO accounts SELECT 1 + i / 3, CASE i % 3 WHEN 0 THEN 'github' WHEN 1 THEN 'google' ELSE 'Github' END,
           CASE WHEN i % 3 = 0 THEN 'tok-' || i END, datetime(1546300800 + (i * 15485863 % 220000000), 'unixepoch')
         FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {USAGE_ROWS})
         INSERT INTO usage_stats (api_key_id, tokens, cost, day, at) SELECT printf('key-%06d', 1 + (i * i) % 4000),
           i * 7 % 5000, CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 977) * 0.0003 END,
           date(1546300800 + i * 1100, 'unixepoch'),
           CASE WHEN i % 100 = 0 THEN NULL
             ELSE strftime('%Y-%m-%d %H:%M:%f', 1546300800 + i * 1100 + (i % 1000) / 1000.0, 'unixepoch') END
         FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
         INSERT INTO sessions SELECT hex(randomblob(8)), i % 50, 1700000000 + i,
           CASE i % 3 WHEN 0 THEN 'text ' || i WHEN 1 THEN x'00ff10' ELSE NULL END FROM s;"
    ))
    .expect("gateway schema and rows");
    conn
}

/// A config reading `file` with `tables` into `sink`, with `extra` lines in `[source]`.
fn sqlite_pipeline(file: &Path, sink: &str, extra: &str) -> Pipeline {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables: Vec<String> = TABLES
        .iter()
        .map(|(n, c)| if c.is_empty() { format!("{{ name = \"{n}\" }}") } else { format!("{{ name = \"{n}\", {c} }}") })
        .collect();
    let text = format!(
        "[pipeline]\nname = \"gw\"\nstate_dir = \"{}\"\n\n[source]\ntype = \"sqlite\"\npath = {:?}\nbatch_rows = 5000\n\
         lag_secs = 0\npoll_interval_secs = 1\n{extra}\ntables = [{}]\n\n[sink]\n{sink}\n",
        dir.path().join("state").display(),
        file.display().to_string(),
        tables.join(", ")
    );
    let config = dir.path().join("highwater.toml");
    std::fs::write(&config, text).expect("write config");
    Pipeline { dir, config }
}

/// The canonical text (see `canonical_expr` in the harness) of a SQLite column, by the type
/// the sink gave it.
fn canonical_sqlite(column: &str, sink_type: &str) -> String {
    let c = if column == "rowid" { "_rowid_".to_owned() } else { format!("\"{column}\"") };
    let value = match sink_type {
        "tinyint" | "bigint" | "double" => format!("CAST({c} AS TEXT)"),
        "decimal" => format!("printf('%.2f', {c})"),
        "date" => format!("CAST(unixepoch({c}) / 86400 AS TEXT)"),
        "datetime" => {
            format!("CAST(unixepoch({c}) * 1000000 + CAST(substr(strftime('%f', {c}), 4) AS INTEGER) * 1000 AS TEXT)")
        }
        _ => format!("hex({c})"),
    };
    format!("CASE WHEN {c} IS NULL THEN NULL ELSE {value} END")
}

/// Every row of a SQLite table in canonical text, keyed as `TestDb::canonical` keys them.
fn sqlite_rows(
    conn: &Connection,
    table: &str,
    columns: &[(String, String)],
    key: &[String],
) -> BTreeMap<String, Vec<Option<String>>> {
    let exprs: Vec<String> = columns.iter().map(|(n, t)| canonical_sqlite(n, t)).collect();
    let mut stmt = conn.prepare(&format!("SELECT {} FROM \"{table}\"", exprs.join(", "))).expect("select");
    let key_idx: Vec<usize> =
        key.iter().map(|k| columns.iter().position(|(n, _)| n == k).expect("key column")).collect();
    let rows = stmt
        .query_map([], |r| (0..columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect::<Result<Vec<_>, _>>())
        .expect("rows");
    rows.map(|r| {
        let r = r.expect("row");
        (key_idx.iter().map(|&i| r[i].clone().unwrap_or_default()).collect::<Vec<_>>().join("|"), r)
    })
    .collect()
}

/// Asserts every table of the file equals its copy in `sink`.
async fn assert_equal(what: &str, conn: &Connection, sink: &TestDb) {
    for (table, _) in TABLES {
        let columns = sink.columns(table).await;
        let key = sink.key(table).await;
        let floats: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].1 == "double").collect();
        let expected = sqlite_rows(conn, table, &columns, &key);
        assert_same_rows(&format!("{what}: {table}"), &expected, &sink.canonical(table).await, &floats);
    }
}

/// Rows loaded per table, from the run's report.
fn loaded(stdout: &[u8]) -> BTreeMap<String, u64> {
    let text = String::from_utf8_lossy(stdout);
    (text.lines())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let table = words.next()?.strip_prefix("gateway.")?.to_owned();
            Some((table, words.next()?.parse().ok()?))
        })
        .collect()
}

/// Changes a writer makes: `n` users renamed, `n` keys rotated, `n` accounts refreshed and
/// `10 n` usage rows added, each stamped now in its column's own form.
fn write_changes(conn: &Connection, round: u32, n: u32) {
    conn.execute_batch(&format!(
        "BEGIN;
         UPDATE users SET name = 'renamed {round} ' || id, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
           WHERE id % 97 = {round} % 97 AND id <= {n} * 97;
         UPDATE api_keys SET key_hash = randomblob(32), updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
           WHERE rowid IN (SELECT rowid FROM api_keys ORDER BY id LIMIT {n} OFFSET {round} * {n} % 3000);
         UPDATE accounts SET token = 'refreshed {round}', updated_at = datetime('now')
           WHERE user_id IN (SELECT user_id FROM accounts WHERE provider = 'github' LIMIT {n} OFFSET {round} * {n} % 900)
           AND provider = 'github';
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10 * {n})
         INSERT INTO usage_stats (api_key_id, tokens, cost, day, at)
           SELECT printf('key-%06d', 1 + i % 4000), i, 0.5, date('now'), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM s;
         COMMIT;"
    ))
    .expect("writer's changes");
}

#[tokio::test]
async fn a_gateway_file_moves_into_mariadb_then_only_its_changes_with_a_writer_at_work() {
    let files = tempfile::tempdir().expect("tempdir");
    let file = files.path().join("gateway.db");
    let conn = gateway(&file);
    let sink = TestDb::new("sqlite_gw").await;
    let backups = files.path().join("backup");
    let p =
        sqlite_pipeline(&file, &mysql_sink(&sink, 1000), &format!("backup_dir = {:?}", backups.display().to_string()));

    // A target that already holds rows this pipeline did not write is refused, by name.
    sink.exec("CREATE TABLE users (id BIGINT PRIMARY KEY, email LONGTEXT)").await;
    sink.exec("INSERT INTO users VALUES (1, 'someone else')").await;
    let out = p.command().arg("--once").output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`users` already holds rows") && stderr.contains("accept_nonempty_target"), "{stderr}");
    assert_eq!(sink.count("users").await, 1, "nothing written");
    assert!(!backups.exists(), "no backup of a failed run");
    sink.exec("DROP TABLE users").await;

    // The first copy: every table, row for row, and a backup of the file.
    let out = p.run_once();
    let rows = loaded(&out.stdout);
    assert_eq!(rows.get("usage_stats"), Some(&u64::from(USAGE_ROWS)), "{rows:?}");
    assert_eq!((rows.get("users"), rows.get("sessions")), (Some(&2000), Some(&500)), "{rows:?}");
    assert_equal("first copy", &conn, &sink).await;
    let kept: Vec<PathBuf> =
        std::fs::read_dir(&backups).expect("backup dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    assert!(name.starts_with("gateway.db.backup.20") && name.ends_with('Z'), "{name}");
    let copy = Connection::open(&kept[0]).expect("backup opens");
    let n: i64 = copy.query_row("SELECT count(*) FROM usage_stats", [], |r| r.get(0)).expect("count");
    assert_eq!(n, i64::from(USAGE_ROWS));
    let schema: BTreeMap<String, String> = sink
        .rows("SHOW CREATE TABLE accounts")
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect();
    assert!(schema["accounts"].contains("utf8mb4_bin"), "keys compare as SQLite's do: {schema:?}");

    // A writer's changes, then a run that moves those and nothing else (sessions, which has
    // no cursor, is copied whole).
    write_changes(&conn, 1, 10);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = p.run_once();
    let rows = loaded(&out.stdout);
    let expected: BTreeMap<String, u64> =
        [("users", 10), ("api_keys", 10), ("accounts", 10), ("usage_stats", 100), ("sessions", 500)]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect();
    assert_eq!(rows, expected);
    assert_equal("changes", &conn, &sink).await;

    // A run while the writer goes on, with the backup taken under it; the next run completes.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (file, writing) = (file.clone(), writing.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&file).expect("writer opens");
            conn.busy_timeout(std::time::Duration::from_secs(10)).expect("timeout");
            let mut round = 2;
            while writing.load(Ordering::Relaxed) {
                write_changes(&conn, round, 5);
                round += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            round
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.run_once();
    writing.store(false, Ordering::Relaxed);
    let rounds = writer.join().expect("writer");
    assert!(rounds > 3, "the writer wrote during the run: {rounds}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.run_once();
    assert_equal("after a writer", &conn, &sink).await;
    for backup in std::fs::read_dir(&backups).expect("backup dir") {
        let copy = Connection::open(backup.expect("entry").path()).expect("backup opens");
        let ok: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
        assert_eq!(ok, "ok");
    }

    // The same file into Parquet, read back by pyarrow.
    let parquet = sqlite_pipeline(&file, "type = \"parquet\"\npath = \"OUT\"", "");
    let text = std::fs::read_to_string(&parquet.config).expect("config");
    std::fs::write(&parquet.config, text.replace("OUT", &parquet.out().display().to_string())).expect("config");
    parquet.run_once();
    for (table, cursor) in [("users", "updated_at"), ("usage_stats", "at"), ("accounts", "updated_at")] {
        let columns = sink.columns(table).await;
        let key = sink.key(table).await;
        let floats: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].1 == "double").collect();
        let keys: Vec<&str> = key.iter().map(String::as_str).collect();
        let files = read_parquet(&parquet.out().join(table), &keys, cursor);
        assert_eq!(files.versions, files.file_rows, "{table}: no version twice");
        assert_same_rows(&format!("parquet {table}"), &sqlite_rows(&conn, table, &columns, &key), &files.rows, &floats);
    }
    sink.drop_db().await;
}

#[tokio::test]
async fn bad_files_tables_and_values_are_named_and_text_mode_loads_odd_values() {
    let files = tempfile::tempdir().expect("tempdir");
    let sink = TestDb::new("sqlite_bad").await;
    let run = |p: &Pipeline| {
        let out = p.command().arg("--once").output().expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let one = |file: &Path, table: &str, extra: &str| {
        let p = sqlite_pipeline(file, &mysql_sink(&sink, 100), extra);
        p.set_tables(&[table]);
        p
    };

    let missing = files.path().join("nope.db");
    let (code, err) = run(&one(&missing, "{ name = \"t\" }", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nope.db (source.path)") && err.contains("does not exist"), "{err}");

    let not_sqlite = files.path().join("notes.db");
    std::fs::write(
        &not_sqlite,
        "these are not the pages of a database, just text long enough to fill a header ".repeat(20),
    )
    .expect("write");
    let (code, err) = run(&one(&not_sqlite, "{ name = \"t\" }", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("notes.db") && err.contains("is it a SQLite database"), "{err}");

    // A corrupt page, and a file a writer holds locked beyond the busy timeout.
    let corrupt = files.path().join("corrupt.db");
    Connection::open(&corrupt)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
                 INSERT INTO big SELECT i, printf('%.200c', 'x') FROM s;",
            )
        })
        .expect("big table");
    let mut bytes = std::fs::read(&corrupt).expect("read");
    bytes[20 * 4096..23 * 4096].fill(0);
    std::fs::write(&corrupt, bytes).expect("corrupt");
    let (code, err) = run(&one(&corrupt, "{ name = \"big\" }", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("corrupt.big") && err.contains("malformed"), "{err}");

    let locked = files.path().join("locked.db");
    let writer = Connection::open(&locked).expect("open");
    writer
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .expect("lock");
    let (code, err) = run(&one(&locked, "{ name = \"t\" }", "busy_timeout_secs = 1"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("locked.db (source.path)") && err.contains("locked for more than 1 s"), "{err}");
    drop(writer);

    let file = files.path().join("odd.db");
    let conn = Connection::open(&file).expect("open");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, v REAL, at TEXT);
         INSERT INTO t VALUES (1, 5, 1.5, '2026-01-01 00:00:00'), (2, 'twelve', 2.5, '2026-01-02 00:00:00'),
           (3, 7, x'ff', '2026-01-03 00:00:00');",
    )
    .expect("odd rows");
    // `check` proves the cursor's index with EXPLAIN QUERY PLAN; `indexes --apply` adds it.
    let p = one(&file, "{ name = \"t\", cursor = \"at\" }", "");
    let (code, out) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL t  cursor at") && out.contains("CREATE INDEX \"hw_t_at\" ON \"t\" (\"at\", \"id\")"),
        "{out}"
    );
    assert_eq!(p.subcommand(&["indexes", "--apply"]).0, Some(0));
    let (code, out) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK   t  cursor at") && out.contains("hw_t_at"), "{out}");

    let (code, err) = run(&one(&file, "{ name = \"gone\" }", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("odd.gone does not exist: check source.tables[0].name"), "{err}");

    let (code, err) = run(&one(&file, "{ name = \"t\", cursor = \"at\" }", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("table odd.t column n: a text value does not fit an INTEGER (row key [Int(2)])"), "{err}");

    // Text mode carries the odd values as text; the key and cursor keep their types.
    sink.exec("DROP TABLE t").await;
    let p = one(&file, "{ name = \"t\", cursor = \"at\", on_type_mismatch = \"text\" }", "");
    let (code, err) = run(&p);
    assert_eq!(code, Some(0), "{err}");
    let rows = sink.rows("SELECT id, n, v, at FROM t ORDER BY id").await;
    let text: Vec<Vec<String>> =
        rows.into_iter().map(|r| r.into_iter().map(Option::unwrap_or_default).collect()).collect();
    assert_eq!(text[1], ["2", "twelve", "2.5", "2026-01-02 00:00:00.000000"]);
    assert_eq!(text[2][2], "x'ff'", "a blob that is not UTF-8 is written as hex");
    let types = sink.columns("t").await;
    assert_eq!(
        types.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["bigint", "longtext", "longtext", "datetime"]
    );
    sink.drop_db().await;
}

/// The constraints of `db` the sink recreated: (table, parent, ON DELETE rule), sorted.
async fn constraints(db: &TestDb) -> Vec<Vec<Option<String>>> {
    db.rows(&format!(
        "SELECT TABLE_NAME, REFERENCED_TABLE_NAME, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = '{}' ORDER BY 1, 2, 3",
        db.name
    ))
    .await
}

#[tokio::test]
async fn foreign_keys_are_recreated_once_their_tables_are_copied_and_orphans_are_named() {
    let files = tempfile::tempdir().expect("tempdir");
    let sink = TestDb::new("sqlite_fk").await;
    let file = files.path().join("shop.db");
    let conn = Connection::open(&file).expect("open");
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id TEXT REFERENCES users ON DELETE CASCADE,
           parent_id INTEGER REFERENCES orders (id) ON DELETE SET NULL, updated_at TEXT NOT NULL);
         CREATE TABLE lines (order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE, n INTEGER NOT NULL,
           qty INTEGER, PRIMARY KEY (order_id, n)) WITHOUT ROWID;
         CREATE TABLE notes (id INTEGER PRIMARY KEY, author TEXT REFERENCES users (name));
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
         INSERT INTO users SELECT 'u' || i, 'name ' || i, '2026-01-01 00:00:00' FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
         INSERT INTO orders SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE 'u' || (1 + i % 300) END,
           CASE WHEN i > 1 THEN i / 2 END, '2026-01-02 00:00:00' FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 9000)
         INSERT INTO lines SELECT 1 + i % 3000, i, i % 7 FROM s;
         INSERT INTO notes VALUES (1, 'name 1');",
    )
    .expect("shop");
    // Children listed before their parents: the keys wait until every table they join is in.
    let tables = "{ name = \"lines\" }, { name = \"notes\" }, { name = \"orders\", cursor = \"updated_at\" }, \
                  { name = \"users\", cursor = \"updated_at\" }";
    let shop = |db: &TestDb| {
        let p = sqlite_pipeline(&file, &format!("{}\nforeign_keys = true", mysql_sink(db, 500)), "");
        p.set_tables(&[tables]);
        p
    };
    let p = shop(&sink);

    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("foreign key not recreated: it references columns that are not the parent's primary key"),
        "{err}"
    );
    let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
    let expected = vec![
        some(&["lines", "orders", "CASCADE"]),
        some(&["orders", "orders", "SET NULL"]),
        some(&["orders", "users", "CASCADE"]),
    ];
    assert_eq!(constraints(&sink).await, expected);
    assert_eq!(sink.count("lines").await, 9000);
    let types = sink.columns("orders").await;
    assert_eq!(types[1], ("user_id".to_owned(), "varchar".to_owned()), "joined like the key it references");

    // A second run finds them present and adds nothing.
    let out = p.command().arg("--once").output().expect("runs again");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(constraints(&sink).await, expected);

    // They hold for the application's sessions: a user's delete cascades two levels, and a
    // row that references no user is refused.
    let mut app = mysql_async::Conn::from_url(sink.url()).await.expect("an application session");
    let before = sink.count("lines").await;
    app.query_drop("DELETE FROM users WHERE id = 'u2'").await.expect("delete a user");
    assert_eq!(sink.count("orders").await, 3000 - 10, "orders 1, 301, ... 2701 went with u2");
    assert_eq!(sink.count("lines").await, before - 30, "and their lines");
    let refused = app.query_drop("INSERT INTO orders VALUES (9999, 'ghost', NULL, NOW())").await;
    assert!(refused.is_err_and(|e| e.to_string().contains("foreign key constraint fails")));
    drop(app);

    // A file whose application never turned foreign keys on: its orphan is named, the rows
    // are loaded all the same, and no constraint is added.
    let orphans = TestDb::new("sqlite_fk_orphan").await;
    conn.execute_batch("INSERT INTO orders VALUES (5000, 'ghost', NULL, '2026-01-03 00:00:00');").expect("orphan");
    let p = shop(&orphans);
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("shop.orders: foreign key (user_id) references users (id), and 1 row(s) match no row there (the first by key: 5000)"),
        "{err}"
    );
    assert!(err.contains("sink.foreign_keys = false"), "{err}");
    assert_eq!(orphans.count("orders").await, 3001, "the rows are in");
    let users = Some("users".to_owned());
    assert!(!constraints(&orphans).await.iter().any(|c| c[1] == users), "no key to users");
    orphans.drop_db().await;
    sink.drop_db().await;
}
