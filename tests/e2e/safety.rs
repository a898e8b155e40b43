//! Never lose a row (issue 5): late commits, deletes, schema changes, source resets, faults.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::harness::{self, KillOnDrop, Pipeline, TestDb, TestUser, assert_same_rows, mysql_sink};
use crate::orders;

/// Waits up to `secs` for `done`, failing if the daemon exits first.
async fn until(daemon: &mut KillOnDrop, secs: u64, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon exited while waiting for {what}");
        assert!(Instant::now() < deadline, "no {what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_of_a_transaction_that_commits_late_all_arrive() {
    let source = TestDb::new("late").await;
    let sink = TestDb::new("late_sink").await;
    orders(&source, 100, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, &mysql_sink(&sink, 50));
    // No waiting for the writer: every pass runs while it is open.
    p.add_source_setting("open_transaction_wait_secs = 0");
    let (mut daemon, port) = p.spawn_daemon();
    until(&mut daemon, 30, "the first copy", async || sink.try_rows("SELECT 1 FROM orders").await.is_ok()).await;
    until(&mut daemon, 30, "the first copy", async || sink.count("orders").await == 100).await;

    // A writer stamps rows, then others commit rows stamped after it while it stays open.
    let mut writer = source.conn().await;
    writer
        .query_drop(
            "BEGIN; INSERT INTO orders SELECT 1000 + seq, NOW(6), 'late', 1 FROM seq_1_to_10; \
             UPDATE orders SET name = 'late update', update_time = NOW(6) WHERE id <= 5",
        )
        .await
        .expect("the writer's statements");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    source.exec("INSERT INTO orders SELECT 2000 + seq, NOW(6), 'after', 1 FROM seq_1_to_10").await;
    // Passes run every second; the committed rows after the writer's start wait behind it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = sink.rows("SELECT COUNT(*) FROM orders WHERE id > 1000").await;
    assert_eq!(held[0][0].as_deref(), Some("0"), "rows stamped after an open writer's start wait for it");

    writer.query_drop("COMMIT").await.expect("commit");
    let expected = source.canonical("orders").await;
    until(&mut daemon, 30, "the late rows", async || sink.canonical("orders").await == expected).await;
    assert_same_rows("after the late commit", &expected, &sink.canonical("orders").await, &[]);
    let (_, body) = harness::http_get(port, "/metrics").expect("metrics");
    let table = format!("table=\"{}.orders\"", source.name);
    let late = harness::sample(&body, "highwater_late_rows_total", &[&table]).expect("late rows");
    assert!(late >= 15.0, "the writer's 15 rows were counted as late: {late}");

    // A login without PROCESS cannot see open transactions: `check` says what that means.
    let user = TestUser::new(&source, &[&source]).await;
    let limited = Pipeline::new(&user.url(&source), &[("orders", "update_time")], 50, &p.parquet_sink());
    let (_, out) = limited.subcommand(&["check"]);
    assert!(out.contains("open transactions are not visible") && out.contains("PROCESS"), "{out}");
    user.drop_user(&source).await;
    drop(writer);
    source.drop_db().await;
    sink.drop_db().await;
}
