//! The fast paths of a first copy (issue 6), tested for what they must keep: every row once,
//! the version guard, and a way back when the server refuses them.

use crate::harness::{OwnServer, Pipeline, TestDb, assert_same_rows, mysql_sink, read_parquet};
use crate::orders;

/// `run --once` at the info level: its log.
fn run_logged(p: &Pipeline) -> String {
    let out = p.command().env("HIGHWATER_LOG", "info").arg("--once").output().expect("highwater runs");
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

    // Into an empty target, the first copy loads in bulk.
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let log = run_logged(&p);
    assert!(log.contains("new rows load by LOAD DATA LOCAL"), "{log}");
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
    // The load that met row 150 was rolled back, with the server's word for it; the table's
    // later batches went by upserts.
    assert_eq!(log.matches("rows with 1 warnings, first: 1062 Duplicate entry '150'").count(), 1, "{log}");
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

/// Copies `events` (dates scattered over a year, keyed by `id`, cursor `at`) into Parquet in
/// pages of 100, and checks the copy read in cursor order: every row once, and about a file
/// per date (365) plus one per batch boundary, not one per date per batch.
async fn copies_in_cursor_order(source: &TestDb) {
    let p = Pipeline::new(&source.url(), &[("events", "at")], 100, "type = \"parquet\"\npath = \"OUT\"");
    p.set_sink(&p.parquet_sink());
    let log = run_logged(&p);
    assert!(log.contains("the first copy reads in cursor order"), "{log}");
    let files = read_parquet(&p.out().join("events"), &["id"], "at");
    assert_same_rows("parquet", &source.canonical("events").await, &files.rows, &[]);
    assert!(files.files.len() < 500, "{} files", files.files.len());
}

#[tokio::test]
async fn a_first_copy_into_parquet_keeps_cursor_order_where_keys_scatter_the_dates() {
    let source = TestDb::new("scatter").await;
    // Each key's date jumps around the year: in key order, every batch would span ~100 dates.
    source
        .exec(
            "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NULL, KEY (at)); \
             INSERT INTO events SELECT seq, IF(seq % 97 = 0, NULL, '2025-01-01' + INTERVAL (seq * 7919 % 365) DAY) \
             FROM seq_1_to_2000",
        )
        .await;
    copies_in_cursor_order(&source).await;
    source.drop_db().await;
}

#[tokio::test]
async fn a_first_copy_into_parquet_looks_past_an_ordered_start_before_it_reads_in_key_order() {
    let source = TestDb::new("scatter_late").await;
    // The first 300 keys on one day (an import of old rows, say), then dates all over the year:
    // the first page alone would pick key order, and a file per date and batch after it.
    source
        .exec(
            "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NULL, KEY (at)); \
             INSERT INTO events SELECT seq, IF(seq <= 300, '2024-06-01' + INTERVAL seq SECOND, \
             '2025-01-01' + INTERVAL (seq * 7919 % 365) DAY) FROM seq_1_to_2000",
        )
        .await;
    copies_in_cursor_order(&source).await;
    source.drop_db().await;
}
