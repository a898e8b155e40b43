//! End-to-end tests of the `highwater` binary against the real MariaDB (and pyarrow as an
//! independent Parquet reader). Each test works in a database of its own.

mod config;
mod deploy;
mod differential;
mod fast;
mod harness;
mod kafka;
mod nulls;
mod ops;
mod safety;
mod settings;
mod sqlite;
mod values;

use std::time::{Duration, Instant};

use harness::{KillOnDrop, Pipeline, TestDb, after_this_second, assert_same_rows, mysql_sink, read_parquet};

/// A table of `n` rows `(id, update_time, name, amount)`, all sharing one `update_time`.
pub(crate) async fn orders(db: &TestDb, n: u32, same_time: bool) {
    db.exec(
        "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL, \
         name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), KEY (update_time)) DEFAULT CHARSET=utf8mb4",
    )
    .await;
    db.exec(&format!(
        "INSERT INTO orders SELECT seq, {}, CONCAT('order ', seq, ' ✓'), seq / 100 FROM seq_1_to_{n}",
        if same_time { "'2026-01-01 00:00:00'".to_owned() } else { "'2026-01-01' + INTERVAL seq SECOND".to_owned() }
    ))
    .await;
}

#[tokio::test]
async fn equal_cursors_across_batch_boundaries_arrive_exactly_once() {
    let source = TestDb::new("ties").await;
    let sink = TestDb::new("ties_sink").await;
    orders(&source, 1000, true).await;

    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 7, &mysql_sink(&sink, 100));
    p.run_once();
    assert_eq!(sink.count("orders").await, 1000);
    assert_same_rows("mysql", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    p.set_sink(&p.parquet_sink());
    p.run_once();
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_eq!(files.file_rows, 1000, "every row once, none twice");
    assert!(files.files.len() >= 143, "1000 rows in batches of at most 7: {} files", files.files.len());
    assert_same_rows("parquet", &source.canonical("orders").await, &files.rows, &[]);

    // A first copy reads by key; cursor order pages through equal cursors once they change.
    source.exec("UPDATE orders SET update_time = '2026-06-01', name = CONCAT(name, '!')").await;
    p.set_sink(&mysql_sink(&sink, 100));
    let out = p.run_once();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 1000 rows"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_same_rows("mysql, equal cursors", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn inserts_and_updates_between_passes_reach_both_sinks() {
    let source = TestDb::new("passes").await;
    let sink = TestDb::new("passes_sink").await;
    orders(&source, 500, false).await;
    let mysql = Pipeline::new(&source.url(), &[("orders", "update_time")], 64, &mysql_sink(&sink, 50));
    let parquet = Pipeline::new(&source.url(), &[("orders", "update_time")], 64, "");
    parquet.set_sink(&parquet.parquet_sink());

    for pass in 0..3 {
        if pass > 0 {
            source
                .exec(&format!(
                    "UPDATE orders SET name = CONCAT(name, ' v{pass}'), amount = amount + 1, update_time = NOW(6) \
                     WHERE id % 7 = {pass}; \
                     INSERT INTO orders SELECT 1000 * {pass} + seq, NOW(6), CONCAT('new ', seq), NULL FROM seq_1_to_40"
                ))
                .await;
        }
        mysql.run_once();
        parquet.run_once();
        let expected = source.canonical("orders").await;
        assert_same_rows(&format!("mysql pass {pass}"), &expected, &sink.canonical("orders").await, &[]);
        let files = read_parquet(&parquet.out().join("orders"), &["id"], "update_time");
        assert_same_rows(&format!("parquet pass {pass}"), &expected, &files.rows, &[]);
    }
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_replay_never_moves_a_row_back_in_time() {
    let source = TestDb::new("guard").await;
    let sink = TestDb::new("guard_sink").await;
    orders(&source, 50, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 10, &mysql_sink(&sink, 10));
    p.run_once();
    // The sink holds a newer version of row 1 than the source; the checkpoint is lost, so
    // every batch is replayed.
    sink.exec("UPDATE orders SET name = 'newer', update_time = '2030-01-01' WHERE id = 1").await;
    sink.exec("DELETE FROM _highwater_checkpoints").await;
    p.run_once();
    let rows = sink.rows("SELECT name FROM orders WHERE id = 1").await;
    assert_eq!(rows, [[Some("newer".to_owned())]], "the older version did not replace the newer one");
    let mut expected = source.canonical("orders").await;
    let mut actual = sink.canonical("orders").await;
    expected.remove("1");
    actual.remove("1");
    assert_same_rows("the other rows", &expected, &actual, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn composite_keys_and_null_cursors() {
    let source = TestDb::new("composite").await;
    let sink = TestDb::new("composite_sink").await;
    source
        .exec(
            "CREATE TABLE visits (site INT NOT NULL, visitor VARCHAR(16) NOT NULL, seen DATETIME NULL, hits INT, \
             PRIMARY KEY (site, visitor), KEY (seen)); \
             INSERT INTO visits SELECT seq % 3, CONCAT('v', seq), IF(seq % 4 = 0, NULL, '2026-01-01' + INTERVAL seq % 5 MINUTE), seq \
             FROM seq_1_to_100",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("visits", "seen")], 3, &mysql_sink(&sink, 10));
    let out = p.run_once();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NULL cursor rows: 25"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_same_rows("pass 1", &source.canonical("visits").await, &sink.canonical("visits").await, &[]);

    // A row whose cursor is set is seen again; rows still NULL are not read twice.
    source.exec("UPDATE visits SET seen = NOW(), hits = -1 WHERE visitor IN ('v4', 'v5')").await;
    after_this_second();
    let out = p.run_once();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 2 rows"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_same_rows("pass 2", &source.canonical("visits").await, &sink.canonical("visits").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn every_type_round_trips_to_mysql_and_parquet() {
    let source = TestDb::new("types").await;
    let sink = TestDb::new("types_sink").await;
    source.exec(include_str!("types.sql")).await;
    let p = Pipeline::new(&source.url(), &[("types", "update_time")], 2, &mysql_sink(&sink, 3));
    let out = p.run_once();
    let report = String::from_utf8_lossy(&out.stdout);
    // Row 2: dt, dtm, dtm6; row 4: dt.
    assert!(report.contains("zero dates -> NULL: 4"), "{report}");

    let expected = source.canonical("types").await;
    assert_same_rows("mysql", &expected, &sink.canonical("types").await, &[]);

    p.set_sink(&p.parquet_sink());
    p.run_once();
    let files = read_parquet(&p.out().join("types"), &["id"], "update_time");
    let columns = source.columns("types").await;
    let floats: Vec<usize> =
        columns.iter().enumerate().filter(|(_, (_, t))| t == "float" || t == "double").map(|(i, _)| i).collect();
    assert_same_rows("parquet", &expected, &files.rows, &floats);
    let expected_types = [
        ("ti1", "int8"),
        ("bu", "uint64"),
        ("zf", "uint32"),
        ("d0", "decimal128(10, 0)"),
        ("d65", "decimal256(65, 30)"),
        ("f", "float"),
        ("db", "double"),
        ("b1", "bool"),
        ("b64", "uint64"),
        ("dt", "date32[day]"),
        ("dtm6", "timestamp[us]"),
        ("ts", "timestamp[us, tz=UTC]"),
        ("t6", "duration[us]"),
        ("y", "uint16"),
        ("e", "string"),
        ("j", "string"),
        ("bn", "fixed_size_binary[8]"),
        ("g", "binary"),
        ("u", "string"),
    ];
    for (column, arrow) in expected_types {
        assert_eq!(files.types[column], arrow, "Arrow type of {column}");
    }
    source.drop_db().await;
    sink.drop_db().await;
}

/// Starts `highwater run --once`, kills it with SIGKILL once `progressed` says it is in the
/// middle of the load, and returns whether it was killed (false: it finished first).
fn kill_midway(p: &Pipeline, progressed: impl Fn() -> bool) -> bool {
    let mut child = KillOnDrop(p.command().arg("--once").spawn().expect("highwater starts"));
    let child = &mut child.0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "highwater failed before it could be killed");
            return false;
        }
        if progressed() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("highwater made no progress in 120 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_the_middle_loses_nothing_and_doubles_nothing() {
    let source = TestDb::new("kill").await;
    let sink = TestDb::new("kill_sink").await;
    orders(&source, 200_000, false).await;
    // A first copy sizes its key ranges from the server's row estimate, and so names its files;
    // statistics taken now are not recomputed in the background between the runs below.
    source.exec("ANALYZE TABLE orders").await;

    // MySQL: killed while the checkpoint table shows some, not all, rows (bulk loads commit
    // at every 1 MiB of rows, about 20,000 of these).
    let sink_config = format!("{}\nbulk_commit_mb = 1", mysql_sink(&sink, 500));
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 2_000, &sink_config);
    let url = sink.url();
    let killed = kill_midway(&p, || {
        let out = std::process::Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "-N", "-e"])
            .arg(format!(
                "SELECT rows_loaded FROM `{}`._highwater_checkpoints",
                url.rsplit('/').next().unwrap_or_default()
            ))
            .output();
        out.ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
            .is_some_and(|n| (20_000..200_000).contains(&n))
    });
    assert!(killed, "the load finished before it could be killed");
    let partial = sink.count("orders").await;
    assert!(partial < 200_000, "killed midway: {partial} rows");
    p.run_once();
    assert_same_rows("mysql after restart", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    // Parquet: killed once the checkpoint file exists, then the rest; then a full replay from
    // no checkpoint rewrites the same files. (Files made durable every MiB, so that the copy
    // checkpoints midway.)
    p.set_sink(&format!("{}\ncommit_mb = 1", p.parquet_sink()));
    let state = p.state_file();
    let checkpointed = || {
        let text = std::fs::read_to_string(&state).ok()?;
        let rows = text.split("\"rows_loaded\": ").nth(1)?;
        rows[..rows.find(|c: char| !c.is_ascii_digit())?].parse::<u64>().ok()
    };
    let killed = kill_midway(&p, || checkpointed().is_some_and(|rows| rows < 200_000));
    assert!(killed, "the Parquet load finished before it could be killed");
    p.run_once();
    let expected = source.canonical("orders").await;
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_eq!(files.file_rows, 200_000, "no row in two files");
    assert_same_rows("parquet after restart", &expected, &files.rows, &[]);
    std::fs::remove_file(&state).expect("checkpoint removed");
    p.run_once();
    let replayed = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_eq!(replayed.files, files.files, "a replay rewrites the same file names");
    assert_eq!(replayed.file_rows, 200_000);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn the_real_matomo_data_replicates() {
    let source = TestDb::new("matomo").await;
    let sink = TestDb::new("matomo_sink").await;
    source.load_matomo_fixture();
    source
        .exec(
            "ALTER TABLE matomo_log_visit ADD INDEX idx_visit_last_action_time (visit_last_action_time); \
             ALTER TABLE matomo_log_link_visit_action ADD INDEX idx_server_time (server_time); \
             ALTER TABLE matomo_log_conversion ADD INDEX idx_server_time (server_time); \
             ALTER TABLE matomo_log_conversion_item ADD INDEX idx_server_time (server_time)",
        )
        .await;
    let tables = [
        ("matomo_log_visit", "visit_last_action_time"),
        ("matomo_log_link_visit_action", "server_time"),
        ("matomo_log_conversion", "server_time"),
        ("matomo_log_conversion_item", "server_time"),
    ];
    let p = Pipeline::new(&source.url(), &tables, 500, &mysql_sink(&sink, 200));
    p.run_once();
    for (table, _) in tables {
        let expected = source.canonical(table).await;
        assert!(!expected.is_empty(), "{table} has rows in the fixture");
        assert_same_rows(table, &expected, &sink.canonical(table).await, &[]);
    }
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_keeps_up_and_stops_cleanly_on_sigterm() {
    let source = TestDb::new("daemon").await;
    let sink = TestDb::new("daemon_sink").await;
    orders(&source, 100, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 20, &mysql_sink(&sink, 20));
    let port = p.serve_metrics_on_a_free_port();
    let mut daemon = KillOnDrop(p.command().spawn().expect("highwater starts"));

    // Waits until `sql` answers `expected` (the target table appears with the first pass).
    let wait_for = async |sql: &str, expected: &str, daemon: &mut KillOnDrop| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = sink.try_rows(sql).await;
            if rows.is_ok_and(|r| r.first().and_then(|r| r[0].as_deref()) == Some(expected)) {
                return;
            }
            assert!(Instant::now() < deadline, "the daemon did not reach {sql} = {expected}");
            assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon exited early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_for("SELECT COUNT(*) FROM orders", "100", &mut daemon).await;
    let table = format!("table=\"{}.orders\"", source.name);
    let scrape = |metric: &str| {
        let (status, body) = harness::http_get(port, "/metrics").expect("the daemon serves /metrics");
        assert!(status.contains("200"), "{status}");
        harness::sample(&body, metric, &[&table, "pipeline=\"test\""])
    };
    let loaded_before = scrape("highwater_rows_loaded_total").expect("rows loaded");
    assert!(loaded_before >= 100.0, "{loaded_before}");
    // The rows are from 2026-01-01, but the sink holds every change up to the pass's bound:
    // it is not behind (deploy.rs shows a lag rising while the sink is blocked, and falling).
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape("highwater_lag_seconds").is_none_or(|lag| lag > 10.0) {
        assert!(Instant::now() < deadline, "caught up, the lag stays near lag_secs + poll interval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(harness::http_get(port, "/health").is_some_and(|(s, _)| s.contains("200")));
    assert!(harness::http_get(port, "/ready").is_some_and(|(s, _)| s.contains("200")));

    // Changes made while it runs arrive within a few poll intervals.
    source.exec("INSERT INTO orders SELECT 1000 + seq, NOW(6), 'live', 1 FROM seq_1_to_30").await;
    source.exec("UPDATE orders SET name = 'changed', update_time = NOW(6) WHERE id <= 10").await;
    let sql = "SELECT COUNT(*) FROM orders WHERE name IN ('live', 'changed')";
    wait_for(sql, "40", &mut daemon).await;
    let loaded_after = scrape("highwater_rows_loaded_total").expect("rows loaded");
    assert!(loaded_after >= loaded_before + 40.0, "rows move: {loaded_before} -> {loaded_after}");

    let status =
        std::process::Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = daemon.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop within 10 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    assert_same_rows("after SIGTERM", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

/// Runs highwater on a config and returns (exit code, stderr).
fn failing_run(p: &Pipeline) -> (i32, String) {
    let started = Instant::now();
    let out = p.command().arg("--once").output().expect("highwater runs");
    assert!(started.elapsed() < Duration::from_secs(20), "failed within the connect timeout");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn bad_input_fails_clearly_and_writes_no_checkpoint() {
    let source = TestDb::new("bad").await;
    orders(&source, 10, false).await;
    let server = harness::server_url();
    let host = server.trim_start_matches("mysql://").rsplit('@').next().unwrap_or_default().to_owned();

    // A port that answers nothing: a listener that never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cases: Vec<(String, &str, &[&str], i32)> = vec![
        (format!("mysql://root@127.0.0.1:{closed_port}/x"), "orders", &["cannot connect", "source.url"], 1),
        (format!("mysql://root@127.0.0.1:{silent_port}/x"), "orders", &["no answer", "within 2 s"], 1),
        (format!("mysql://root:wrong-pw@{host}/{}", source.name), "orders", &["refused the login", "source.url"], 1),
        (source.url(), "nope", &["table", ".nope does not exist", "source.tables[0].name"], 1),
    ];
    for (url, table, needles, code) in cases {
        let p = Pipeline::new(&url, &[(table, "update_time")], 10, "");
        p.set_sink(&p.parquet_sink());
        p.add_source_setting("pool = { connect_timeout_secs = 2 }");
        let (exit, stderr) = failing_run(&p);
        assert_eq!(exit, code, "{url}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{url}: expected {n:?} in {stderr}");
        }
        assert!(!stderr.contains("wrong-pw"), "the password never appears: {stderr}");
        assert!(!p.state_file().exists(), "no checkpoint written");
    }

    let sink = TestDb::new("bad_sink").await;
    let p = Pipeline::new(&source.url(), &[("orders", "updated_at")], 10, &mysql_sink(&sink, 10));
    let (exit, stderr) = failing_run(&p);
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("has no column \"updated_at\": check source.tables[0].cursor"), "{stderr}");
    assert!(sink.rows("SHOW TABLES").await.is_empty(), "nothing written to the sink: no checkpoint table");

    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 10, "");
    p.set_sink(&format!("{}\ncompression = \"gzip\"", p.parquet_sink()));
    let (exit, stderr) = failing_run(&p);
    assert_eq!(exit, 2, "{stderr}");
    assert!(stderr.contains("unknown field `compression`") && stderr.contains("sink"), "{stderr}");
    drop(silent);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn check_fails_without_cursor_indexes_and_passes_after_indexes_apply() {
    let source = TestDb::new("check").await;
    source.load_matomo_fixture();
    let tables = [("matomo_log_visit", "visit_last_action_time"), ("matomo_log_link_visit_action", "server_time")];
    let p = Pipeline::new(&source.url(), &tables, 500, "");
    p.set_sink(&p.parquet_sink());
    let highwater = |args: &[&str]| p.subcommand(args);

    let (code, before) = highwater(&["check", "--json"]);
    assert_eq!(code, Some(1), "{before}");
    let before: serde_json::Value = serde_json::from_str(&before).expect("JSON");
    for t in before["tables"].as_array().expect("tables") {
        assert_eq!(t["ok"], false);
        assert_eq!(t["explain"]["type"], "ALL", "a full scan without the index: {t}");
        assert!(t["fix"]["create"].as_str().is_some_and(|s| s.contains("ALGORITHM=INPLACE LOCK=NONE")));
    }

    let (code, printed) = highwater(&["indexes"]);
    assert_eq!(code, Some(0));
    assert!(
        printed.contains("CREATE INDEX `idx_server_time`") && printed.contains("DROP INDEX `idx_server_time`"),
        "{printed}"
    );
    assert_eq!(highwater(&["check"]).0, Some(1), "printing changes nothing");

    let (code, applied) = highwater(&["indexes", "--apply"]);
    assert_eq!(code, Some(0), "{applied}");
    assert_eq!(applied.matches("-- applied in").count(), 2, "{applied}");

    let (code, after) = highwater(&["check", "--json"]);
    assert_eq!(code, Some(0), "{after}");
    let after: serde_json::Value = serde_json::from_str(&after).expect("JSON");
    assert_eq!(after["tables"][0]["explain"]["key"], "idx_visit_last_action_time");
    assert_eq!(after["tables"][1]["explain"]["key"], "idx_server_time");
    for t in after["tables"].as_array().expect("tables") {
        assert_eq!(t["explain"]["type"], "range", "{t}");
    }
    assert!(highwater(&["indexes"]).1.contains("nothing to do"));
    source.drop_db().await;
}

#[tokio::test]
async fn the_matomo_preset_replicates_every_log_table_including_log_action() {
    // A server of its own: each `--once` run must copy every change, and on the shared server
    // another test's writer (a sink's open load) may hold the pass's bound below the update
    // of pass 1 (seen once in CI: the updated row arrived with its old time; likely that).
    let server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "preset").await;
    let sink = TestDb::on(&server.url(), "preset_sink").await;
    source.load_matomo_fixture();
    let p = Pipeline::new(&source.url(), &[], 300, &mysql_sink(&sink, 100));
    let text = std::fs::read_to_string(&p.config).expect("config");
    let text = text.replacen("type = \"mysql\"\nurl", "type = \"matomo\"\nurl", 1).replace("tables = []\n", "");
    std::fs::write(&p.config, text).expect("config");
    let highwater = |args: &[&str]| p.subcommand(args);
    assert_eq!(highwater(&["indexes", "--apply"]).0, Some(0));
    let (code, checked) = highwater(&["check"]);
    assert_eq!(code, Some(0), "{checked}");
    assert!(
        checked.contains("OK   ") && checked.contains("matomo_log_action") && checked.contains("on PRIMARY"),
        "{checked}"
    );

    let tables = [
        "matomo_log_visit",
        "matomo_log_link_visit_action",
        "matomo_log_conversion",
        "matomo_log_conversion_item",
        "matomo_log_action",
    ];
    for pass in 0..2 {
        if pass == 1 {
            source
                .exec(
                    "INSERT INTO matomo_log_action (name, hash, type) VALUES ('new page', 1, 1), ('other', 2, 1); \
                     UPDATE matomo_log_link_visit_action SET server_time = NOW(), time_spent = 42 \
                     ORDER BY idlink_va DESC LIMIT 3",
                )
                .await;
            after_this_second();
        }
        p.run_once();
        for table in tables {
            let expected = source.canonical(table).await;
            assert!(!expected.is_empty(), "{table} has rows");
            assert_same_rows(&format!("{table} pass {pass}"), &expected, &sink.canonical(table).await, &[]);
        }
    }
    source.drop_db().await;
    sink.drop_db().await;
}
