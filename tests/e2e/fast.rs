//! The fast paths of a first copy (issue 6), tested for what they must keep: every row once,
//! the version guard, and a way back when the server refuses them.

use std::time::{Duration, Instant};

use crate::harness::{self, KillOnDrop, OwnServer, Pipeline, TestDb, assert_same_rows, mysql_sink, read_parquet};
use crate::orders;
use mysql_async::prelude::Queryable;

/// `run --once` at the info level: its log.
fn run_logged(p: &Pipeline) -> String {
    run_logged_at(p, "info")
}

/// `run --once` logging at `level` (a `HIGHWATER_LOG` filter): its log.
fn run_logged_at(p: &Pipeline, level: &str) -> String {
    let out = p.command().env("HIGHWATER_LOG", level).arg("--once").output().expect("highwater runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// Keys dense at the start and sparse after: ranges planned from the key span hold far more
/// rows than a page at the start (read as several pages) and none in the gaps.
async fn skewed(db: &TestDb) {
    db.exec(
        "CREATE TABLE skewed (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME(6) NULL, v VARCHAR(32) NOT NULL, KEY (at)); \
         INSERT INTO skewed SELECT seq, IF(seq % 50 = 0, NULL, '2026-01-01' + INTERVAL seq SECOND), CONCAT('v', seq) \
         FROM seq_1_to_2000; \
         INSERT INTO skewed SELECT 1000000000000 + seq * 1000000000, '2026-02-01' + INTERVAL seq SECOND, CONCAT('s', seq) \
         FROM seq_1_to_300; \
         ANALYZE TABLE skewed",
    )
    .await;
}

#[tokio::test]
async fn a_first_copy_in_key_ranges_copies_dense_and_sparse_keys_once_then_follows_changes() {
    let source = TestDb::new("ranges").await;
    let sink = TestDb::new("ranges_sink").await;
    skewed(&source).await;
    let p = Pipeline::new(&source.url(), &[("skewed", "at")], 100, &mysql_sink(&sink, 100));
    let out = p.run_once();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_rows("mysql", &source.canonical("skewed").await, &sink.canonical("skewed").await, &[]);
    // The copy handed over to cursor order at its highest row: the checkpoint says so.
    let checkpoint = sink.rows("SELECT position FROM _highwater_checkpoints").await;
    let position = checkpoint[0][0].clone().unwrap_or_default();
    assert!(position.contains("\"phase\":\"at\"") && position.contains("2026-02-01 00:05:00"), "{position}");

    p.set_sink(&p.parquet_sink());
    p.run_once();
    let files = read_parquet(&p.out().join("skewed"), &["id"], "at");
    assert_same_rows("parquet", &source.canonical("skewed").await, &files.rows, &[]);
    assert_eq!(files.file_rows, 2300, "every row in one file only");

    // After the copy, changes follow in cursor order.
    source.exec("UPDATE skewed SET at = '2026-03-01', v = 'changed' WHERE id IN (7, 1001000000000)").await;
    p.set_sink(&mysql_sink(&sink, 100));
    let out = p.run_once();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 2 rows"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_same_rows("mysql after changes", &source.canonical("skewed").await, &sink.canonical("skewed").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_bulk_load_that_meets_a_newer_row_is_rolled_back_and_the_guard_keeps_it() {
    let source = TestDb::new("bulk").await;
    let sink = TestDb::new("bulk_sink").await;
    orders(&source, 500, false).await;

    // Into an empty target, the first copy loads in bulk: its 100-row batches in one load,
    // committed once at the end of the pass.
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let log = run_logged_at(&p, "info,highwater_sinks=debug");
    assert!(log.contains("new rows load by LOAD DATA LOCAL"), "{log}");
    let loads: Vec<&str> = log.lines().filter(|l| l.contains("a bulk load committed")).collect();
    assert!(loads.len() == 1 && loads[0].ends_with(" rows=500"), "{log}");
    assert_same_rows("bulk", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    // A target that already holds an older version of one row and a newer version of another:
    // the load that meets the first is rolled back, and the guarded upserts replace the older
    // row and keep the newer one.
    let again = TestDb::new("bulk_again").await;
    again.exec(&format!("CREATE TABLE orders LIKE `{}`.orders", sink.name)).await;
    again.exec("INSERT INTO orders VALUES (150, '2000-01-01', 'older in the target', 1)").await;
    again.exec("INSERT INTO orders VALUES (250, '2030-01-01', 'newer in the target', 1)").await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&again, 100));
    let log = run_logged(&p);
    // The load that met rows 150 and 250 was rolled back, with the server's word for it; its
    // batches went by upserts.
    assert_eq!(
        log.matches("inserted 498 of 500 rows with 2 warnings, first: 1062 Duplicate entry '150'").count(),
        1,
        "{log}"
    );
    let got = again.canonical("orders").await;
    let newer = got.get("250").cloned().expect("row 250");
    // 2030-01-01 in the canonical text: microseconds since 1970.
    assert!(newer.iter().any(|v| v.as_deref() == Some("1893456000000000")), "{newer:?}");
    let mut expected = source.canonical("orders").await;
    expected.insert("250".to_owned(), newer);
    assert_same_rows("guarded", &expected, &got, &[]);
    source.drop_db().await;
    sink.drop_db().await;
    again.drop_db().await;
}

/// Holds row 250 of `db`'s `orders` in an open transaction of the test's own: a bulk load
/// that reaches it waits there, its statement still running, until the transaction ends.
async fn hold_row_250(db: &TestDb) -> mysql_async::Conn {
    let mut blocker = db.conn().await;
    blocker.query_drop("BEGIN").await.expect("begin");
    blocker.query_drop("INSERT INTO orders VALUES (250, '1999-01-01', 'blocker', 0)").await.expect("insert");
    blocker
}

/// `run --once` at `level`, its stderr piped (see [`KillOnDrop::finished`]).
fn spawn_once(p: &Pipeline, level: &str) -> KillOnDrop {
    let mut run = p.command();
    run.env("HIGHWATER_LOG", level).arg("--once").stdout(std::process::Stdio::null());
    KillOnDrop(run.stderr(std::process::Stdio::piped()).spawn().expect("highwater starts"))
}

/// The session of `db`'s server running a `LOAD DATA LOCAL` into `db`, once there is one.
async fn running_load(db: &TestDb) -> String {
    let find = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'LOAD DATA LOCAL%'",
        db.name
    );
    let started = Instant::now();
    loop {
        if let Some(id) = db.rows(&find).await.first().and_then(|r| r[0].clone()) {
            return id;
        }
        assert!(started.elapsed().as_secs() < 60, "no LOAD DATA LOCAL in the sink's process list");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bulk_load_whose_connection_is_killed_midway_is_written_again_by_upserts() {
    // A server of its own: the row it holds would hold every other test's bound on a shared one
    // (open transactions are the server's, not a database's).
    let server = OwnServer::start();
    let source = TestDb::on(&server.url(), "bulk_cut").await;
    let sink = TestDb::on(&server.url(), "bulk_cut_sink").await;
    orders(&source, 500, false).await;
    // A transaction of the test's own holds row 250 in the target: the load waits on it, its
    // statement still running, until the test kills its connection.
    sink.exec(&format!("CREATE TABLE orders LIKE `{}`.orders", source.name)).await;
    let mut blocker = hold_row_250(&sink).await;

    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    // The blocker is a writing transaction on the source's server too: the pass waits for it
    // only briefly.
    p.set_open_transaction_wait(1);
    let mut run = spawn_once(&p, "info");
    let load = running_load(&sink).await;
    sink.exec(&format!("KILL CONNECTION {load}")).await;
    blocker.query_drop("ROLLBACK").await.expect("rollback");
    drop(blocker);

    let (status, log) = run.finished().await;
    assert!(status.success(), "{log}");
    assert_same_rows("after the kill", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    assert!(log.contains("go by upserts"), "{log}");
    let checkpoint = sink.rows("SELECT position, rows_loaded FROM _highwater_checkpoints").await;
    assert_eq!(checkpoint[0][1].as_deref(), Some("500"), "{checkpoint:?}");
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_sink_that_dies_under_an_open_load_fails_the_run_and_status_names_the_table() {
    let source = TestDb::new("bulk_dies").await;
    orders(&source, 500, false).await;
    let mut server = OwnServer::start();
    let sink = TestDb::on(&server.url(), "bulk_dies_sink").await;
    // As in the test above: row 250, held by the test, keeps the load's statement running.
    sink.exec(
        "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL, \
         name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), KEY (update_time)) DEFAULT CHARSET=utf8mb4",
    )
    .await;
    let blocker = hold_row_250(&sink).await;

    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    p.add_pipeline_setting("retry_for_secs = 2");
    let mut run = spawn_once(&p, "warn");
    running_load(&sink).await;
    // The sink's server dies; the pass has ended, so it is the flush that fails, then gives up.
    drop(blocker);
    server.stop("KILL");
    let (status, log) = run.finished().await;
    assert_eq!(status.code(), Some(1), "{log}");

    server.resume();
    let (code, out) = p.subcommand(&["status", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let orders = &status["tables"][0];
    assert!(orders["last_error"].as_str().is_some_and(|e| e.contains("(sink.url)")), "{orders}\n{log}");
    assert_eq!(orders["rows_loaded"], 0, "nothing of the load was taken for durable: {orders}");
    source.drop_db().await;
}

#[tokio::test]
async fn a_sink_server_that_refuses_load_data_local_gets_inserts() {
    let source = TestDb::new("noinfile").await;
    orders(&source, 300, false).await;
    let server = OwnServer::start_with(&["--local-infile=0".to_owned()]);
    let sink = TestDb::on(&server.url(), "noinfile_sink").await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let log = run_logged(&p);
    assert!(log.contains("refuses LOAD DATA LOCAL"), "{log}");
    assert_same_rows("inserts", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
}

#[tokio::test]
async fn a_first_copy_into_parquet_of_dates_scattered_over_the_keys_reads_by_key_and_writes_a_file_per_date() {
    let source = TestDb::new("scatter").await;
    // 2,000 rows whose cursor jumps around 2025 (every date of it), NULL for every 97th key:
    // read by key, each batch of 100 spans about 90 dates.
    source
        .exec(
            "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NULL, KEY (at)); \
             INSERT INTO events SELECT seq, IF(seq % 97 = 0, NULL, '2025-01-01' + INTERVAL (seq * 7919 % 365) DAY) \
             FROM seq_1_to_2000",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("events", "at")], 100, "type = \"parquet\"\npath = \"OUT\"");
    p.set_sink(&p.parquet_sink());
    let log = run_logged(&p);
    assert!(!log.contains("reads in cursor order"), "{log}");
    let files = read_parquet(&p.out().join("events"), &["id"], "at");
    assert_same_rows("parquet", &source.canonical("events").await, &files.rows, &[]);
    // The 20 batches' rows kept by date and written once: 365 dates and the NULL partition,
    // where a file per date and batch would be about 1,800.
    assert_eq!(files.files.len(), 366, "{:?}", files.files);
    assert_eq!((files.file_rows, files.versions), (2_000, 2_000), "every row once");
    source.drop_db().await;
}

#[tokio::test]
async fn a_parquet_copy_commits_its_checkpoint_once_per_group_not_once_per_batch() {
    let source = TestDb::new("one_commit").await;
    orders(&source, 1_000, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 10, "");
    p.set_sink(&p.parquet_sink());
    let (mut daemon, port) = p.spawn_daemon();
    let table = format!("table=\"{}.orders\"", source.name);
    let scrape = |name: &str, label: &str| {
        let (_, body) = harness::http_get(port, "/metrics")?;
        harness::sample(&body, name, &[label, "pipeline=\"test\""])
    };
    // Rows count as loaded once their checkpoint is committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while scrape("highwater_rows_loaded_total", &table).is_none_or(|rows| rows < 1_000.0) {
        assert!(Instant::now() < deadline, "the copy did not finish within 60 s");
        assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches = scrape("highwater_batches_total", &table).expect("batches");
    let commits = scrape("highwater_stage_seconds_count", "stage=\"checkpoint\"").expect("checkpoint commits");
    // The files of a pass are made durable together, and the checkpoint follows once: at the
    // end of the pass (or after a quiet second on a slow machine), not after each batch.
    assert!(batches >= 100.0, "1,000 rows in batches of at most 10: {batches}");
    assert!((1.0..=5.0).contains(&commits), "{commits} checkpoint commits for {batches} batches");
    source.drop_db().await;
}
