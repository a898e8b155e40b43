//! Rows whose cursor is NULL: copied first, and found again on every pass after the first copy
//! (a NULL sorts before every cursor value, behind any checkpoint), in both sinks, once each.

use crate::harness::{Pipeline, TestDb, assert_same_rows, mysql_sink, read_parquet};

#[tokio::test]
async fn rows_inserted_with_a_null_cursor_after_the_first_copy_arrive_once_in_both_sinks() {
    let source = TestDb::new("nulls").await;
    let sink = TestDb::new("nulls_sink").await;
    source
        .exec(
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, c DATETIME(6) NULL, v INT, KEY (c)); \
             INSERT INTO t (c, v) SELECT IF(seq % 5 = 0, NULL, '2026-01-01' + INTERVAL seq MINUTE), seq FROM seq_1_to_50",
        )
        .await;
    let to_mysql = Pipeline::new(&source.url(), &[("t", "c")], 7, &mysql_sink(&sink, 100));
    let to_parquet = Pipeline::new(&source.url(), &[("t", "c")], 7, "type = \"parquet\"");
    to_parquet.set_sink(&to_parquet.parquet_sink());
    let both = || {
        let reports = [to_mysql.run_once(), to_parquet.run_once()];
        reports.map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    both();

    // More NULL-cursor rows than a page, and rows with a cursor, after the copy.
    source.exec("INSERT INTO t (c, v) SELECT NULL, 1000 + seq FROM seq_1_to_23").await;
    source.exec("INSERT INTO t (c, v) SELECT NOW(6) - INTERVAL 1 HOUR, 2000 + seq FROM seq_1_to_5").await;
    let [mysql, parquet] = both();
    assert!(mysql.contains(" 28 rows") && mysql.contains("NULL cursor rows: 23"), "{mysql}");
    assert!(parquet.contains(" 28 rows"), "{parquet}");
    source.exec("INSERT INTO t (c, v) VALUES (NULL, 3001), (NULL, 3002)").await;
    both();
    let [mysql, _] = both();
    assert!(mysql.contains(" 0 rows"), "nothing is read twice: {mysql}");

    let expected = source.canonical("t").await;
    assert_eq!(expected.len(), 80);
    assert_same_rows("mysql", &expected, &sink.canonical("t").await, &[]);
    let files = read_parquet(&to_parquet.out().join("t"), &["id"], "c");
    assert_eq!(files.file_rows, 80, "every row once in the Parquet files");
    assert_same_rows("parquet", &expected, &files.rows, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn reconcile_names_the_null_cursor_rows_no_pass_will_bring() {
    let source = TestDb::new("nullrec").await;
    let sink = TestDb::new("nullrec_sink").await;
    source.exec("CREATE TABLE t (id INT PRIMARY KEY, c DATETIME(6) NULL, KEY (c))").await;
    source.exec("INSERT INTO t SELECT seq * 10, IF(seq % 2 = 0, NULL, '2026-01-01') FROM seq_1_to_20").await;
    let p = Pipeline::new(&source.url(), &[("t", "c")], 100, &mysql_sink(&sink, 100));
    p.run_once();
    // Below the highest NULL-cursor key read (200), and above it.
    source.exec("INSERT INTO t VALUES (5, NULL), (500, NULL)").await;
    p.run_once();
    assert_eq!(sink.count("t").await, 21, "the row above arrives");
    let (code, out) = p.subcommand(&["reconcile", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 not yet in the sink"), "{out}");
    assert!(out.contains("1 of those have a NULL c and a key below"), "{out}");
    source.drop_db().await;
    sink.drop_db().await;
}
