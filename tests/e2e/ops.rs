//! Operating highwater: pools held in bounds while a daemon runs, passwords never printed,
//! JSON logs, and `highwater status`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{self, KillOnDrop, Pipeline, TestDb, TestUser};
use crate::orders;

/// `highwater_pool_connections{pool, state}` in a scrape.
fn pool_state(metrics: &str, pool: &str, state: &str) -> Option<f64> {
    harness::sample(
        metrics,
        "highwater_pool_connections",
        &[&format!("pool=\"{pool}\""), &format!("state=\"{state}\"")],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_keeps_its_pools_in_bounds_and_never_prints_its_password() {
    let source = TestDb::new("pools").await;
    let sink = TestDb::new("pools_sink").await;
    orders(&source, 200, false).await;
    let user = TestUser::new(&source, &[&source, &sink]).await;
    let pool = "pool = { size = 1, max_overflow = 1 }";
    let sink_table = format!("type = \"mysql\"\nurl = \"{}\"\nbatch_rows = 20\n{pool}", user.url(&sink));
    let p = Pipeline::new(&user.url(&source), &[("orders", "update_time")], 20, &sink_table);
    p.add_source_setting(pool);
    let port = p.serve_metrics_on_a_free_port();
    let log = p.dir.path().join("daemon.log");
    let mut daemon = KillOnDrop(
        p.command()
            .args(["--log-format", "json"])
            .env("HIGHWATER_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("highwater starts"),
    );

    // Eight seconds of passes (one a second) with changes arriving, watched from the server
    // and through /metrics.
    let (mut most_source, mut most_sink, mut idle_scrapes, mut scrapes) = (0, 0, 0, 0);
    let mut waits = Vec::new();
    let started = Instant::now();
    let mut next_change = 0;
    while started.elapsed() < Duration::from_secs(8) {
        assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon exited: {}", read(&log));
        if started.elapsed() > Duration::from_secs(next_change) {
            let id = 1000 + next_change * 100;
            source.exec(&format!("INSERT INTO orders SELECT {id} + seq, NOW(6), 'live', 1 FROM seq_1_to_50")).await;
            next_change += 2;
        }
        most_source = most_source.max(user.sessions(&source, Some(&source)).await);
        most_sink = most_sink.max(user.sessions(&source, Some(&sink)).await);
        if let Some((_, body)) = harness::http_get(port, "/metrics") {
            assert!(!body.contains(&user.password), "the password is in /metrics");
            let in_use = (pool_state(&body, "source", "in_use"), pool_state(&body, "sink", "in_use"));
            if let (Some(a), Some(b)) = in_use {
                scrapes += 1;
                idle_scrapes += usize::from(a == 0.0 && b == 0.0);
                let wait = "highwater_pool_wait_seconds_count";
                waits.push(harness::sample(&body, wait, &["pool=\"source\""]).unwrap_or_default());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(most_source <= 2 && most_sink <= 2, "size + max_overflow = 2: saw {most_source} and {most_sink} sessions");
    assert!(most_source >= 1 && most_sink >= 1, "the sessions were seen at all");
    assert!(scrapes > 20, "{scrapes} scrapes");
    assert!(idle_scrapes * 2 > scrapes, "between passes nothing is in use: {idle_scrapes} of {scrapes} scrapes idle");
    assert!(waits.last() > waits.first(), "passes kept taking connections: {waits:?}");
    let expected = 200 + 50 * next_change / 2;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.try_rows("SELECT COUNT(*) FROM orders").await.ok().and_then(|r| r[0][0].clone())
        != Some(expected.to_string())
    {
        assert!(Instant::now() < deadline, "the sink did not reach {expected} rows");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A second run of the same pipeline is refused while the daemon holds the lock.
    let second = p.command().arg("--once").output().expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another highwater run of pipeline test") && stderr.contains(&daemon.0.id().to_string()),
        "{stderr}"
    );

    let kill = std::process::Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status();
    assert!(kill.expect("kill runs").success());
    let exit = daemon.0.wait().expect("the daemon stops");
    assert!(exit.success(), "{exit}: {}", read(&log));
    let text = read(&log);
    assert!(text.lines().count() > 10, "debug logging writes lines: {text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(!text.contains(&user.password), "the password is in the log");
    assert!(text.contains(&format!("{}:***@", user.name)), "URLs are logged redacted");
    let (code, status) = p.subcommand(&["status", "--json"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(!status.contains(&user.password), "the password is in status");
    user.drop_user(&source).await;
    source.drop_db().await;
    sink.drop_db().await;
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn status_shows_checkpoint_rows_lag_and_the_last_error_of_each_table() {
    let source = TestDb::new("status").await;
    let sink = TestDb::new("status_sink").await;
    orders(&source, 50, false).await;
    source.exec("CREATE TABLE notes (id INT PRIMARY KEY, update_time DATETIME(6) NOT NULL, KEY (update_time))").await;
    let tables = [("orders", "update_time"), ("notes", "update_time")];
    let p = Pipeline::new(&source.url(), &tables, 20, "");
    p.set_sink(&p.parquet_sink());
    let status = |p: &Pipeline| -> serde_json::Value {
        let (code, out) = p.subcommand(&["status", "--json"]);
        assert_eq!(code, Some(0), "{out}");
        serde_json::from_str(&out).expect("JSON")
    };

    let before = status(&p);
    assert_eq!(before["last_run"], serde_json::Value::Null);
    assert_eq!(before["tables"][0]["checkpoint"], serde_json::Value::Null);
    assert!(p.subcommand(&["status"]).1.contains("none: never loaded"));

    p.run_once();
    let after = status(&p);
    assert_eq!(after["last_run"]["ok"], true);
    let orders = &after["tables"][0];
    assert_eq!(orders["table"], format!("{}.orders", source.name));
    assert_eq!(orders["rows_loaded"], 50);
    assert!(
        orders["checkpoint"].as_str().is_some_and(|c| c.starts_with("(2026-01-01 00:00:50.000000, 50)")),
        "{orders}"
    );
    assert!(orders["lag_seconds"].as_f64().is_some_and(|l| l > 3600.0), "rows from 2026-01-01: {orders}");

    // A column renamed under the pipeline: the run fails, and status says where and why.
    source.exec("ALTER TABLE orders RENAME COLUMN update_time TO changed_at").await;
    let out = p.command().arg("--once").output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let failed = status(&p);
    assert_eq!(failed["last_run"]["ok"], false);
    assert!(failed["last_run"]["error"].as_str().is_some_and(|e| e.contains("has no column")), "{failed}");
    let orders = &failed["tables"][0];
    assert!(orders["last_error"].as_str().is_some_and(|e| e.contains("source.tables[0].cursor")), "{orders}");
    assert_eq!(failed["tables"][1]["last_error"], serde_json::Value::Null, "notes did nothing wrong");
    assert_eq!(orders["rows_loaded"], 50, "the checkpoint is untouched");

    source.exec("ALTER TABLE orders RENAME COLUMN changed_at TO update_time").await;
    p.run_once();
    let recovered = status(&p);
    let orders = &recovered["tables"][0];
    assert!(orders["last_error"].is_string(), "the last error stays on record: {orders}");
    assert!(orders["last_ok_at"].as_str() > orders["last_error_at"].as_str(), "and a later run went through");
    assert!(p.subcommand(&["status"]).1.contains("a run went through since"));

    // A MySQL sink keeps the checkpoints in its own table, absent until the first run.
    p.set_sink(&harness::mysql_sink(&sink, 20));
    assert_eq!(status(&p)["tables"][0]["checkpoint"], serde_json::Value::Null);
    p.run_once();
    assert_eq!(status(&p)["tables"][0]["rows_loaded"], 50);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_the_metrics_endpoint_backs_off_logs_once_and_recovers() {
    let source = TestDb::new("nofile").await;
    orders(&source, 10, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, "type = \"parquet\"\npath = \"out\"");
    let port = p.serve_metrics_on_a_free_port();
    let log = p.dir.path().join("daemon.log");
    let script =
        format!("ulimit -n 64 && exec '{}' run --config '{}'", env!("CARGO_BIN_EXE_highwater"), p.config.display());
    let _daemon = KillOnDrop(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("HIGHWATER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("highwater starts"),
    );
    let answers = |within: Duration| {
        let started = Instant::now();
        while started.elapsed() < within {
            if harness::http_get(port, "/health").is_some_and(|(status, _)| status.contains("200")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(answers(Duration::from_secs(20)), "the daemon serves /health: {}", read(&log));
    // Clients that connect and send nothing hold a descriptor each until the request timeout.
    let held: Vec<std::net::TcpStream> =
        (0..120).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = read(&log);
    let failures = text.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} lines of failed accepts in 3 s ({} clients): {text:.2000}",
        held.len()
    );
    drop(held);
    assert!(answers(Duration::from_secs(15)), "it serves again once descriptors are free: {text:.2000}");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_stops_inside_a_daemon_takes_ready_down_and_counts_an_error_at_once() {
    let source = TestDb::new("stopready").await;
    orders(&source, 10, false).await;
    source.exec("CREATE TABLE other (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, v VARCHAR(8), KEY (c))").await;
    source.exec("INSERT INTO other VALUES (1, '2026-01-01', 'a')").await;
    let p = Pipeline::new(
        &source.url(),
        &[("orders", "update_time"), ("other", "c")],
        100,
        "type = \"parquet\"\npath = \"out\"",
    );
    let (mut daemon, port) = p.spawn_daemon();
    let scrape = || harness::http_get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let errors =
        |body: &str| harness::sample(body, "highwater_errors_total", &["stage=\"extract\"", "kind=\"operator\""]);
    let ready = || harness::http_get(port, "/ready").is_some_and(|(status, _)| status.contains("200"));
    let wait_for = |what: &dyn Fn() -> bool| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(wait_for(&ready), "the daemon becomes ready");
    assert_eq!(errors(&scrape()), Some(0.0), "the series exists before any error: {}", scrape());
    source.exec("ALTER TABLE other MODIFY v VARCHAR(16)").await;
    assert!(wait_for(&|| errors(&scrape()) == Some(1.0)), "the stop is counted at once: {}", scrape());
    assert!(wait_for(&|| !ready()), "and /ready says so");
    // The other table goes on.
    source.exec("INSERT INTO orders VALUES (500, NOW(6), 'late', 1)").await;
    assert!(
        wait_for(&|| harness::sample(&scrape(), "highwater_rows_loaded_total", &["orders"]) == Some(11.0)),
        "{}",
        scrape()
    );
    assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon runs on");
    assert!(!ready(), "still not ready");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_follow_the_config_file_and_one_output_is_written_by_one_run_at_a_time() {
    let source = TestDb::new("paths").await;
    orders(&source, 20, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, "type = \"parquet\"\npath = \"out\"");
    let text = std::fs::read_to_string(&p.config).expect("config");
    let state = p.dir.path().join("state").display().to_string();
    std::fs::write(&p.config, text.replace(&format!("\"{state}\""), "\"state\"")).expect("config");
    // Started from another directory, as cron would.
    let out = p.command().arg("--once").current_dir("/").output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(p.dir.path().join("state/test.checkpoints.json").is_file(), "the state beside the config");
    assert!(p.dir.path().join("out/orders").is_dir(), "the output beside the config");

    // A second config (its own state directory) writing the same files is refused while a
    // daemon of the first runs.
    let other = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, "");
    other.set_sink(&format!("type = \"parquet\"\npath = \"{}\"", p.out().display()));
    let (mut daemon, _) = p.spawn_daemon();
    let started = Instant::now();
    while !p.dir.path().join("out/.highwater.lock").exists() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = other.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("another highwater run is writing") && err.contains(&daemon.0.id().to_string()), "{err}");
    daemon.0.kill().expect("kill");
    daemon.0.wait().expect("reaped");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_config_writing_the_same_mysql_sink_is_refused_while_a_daemon_writes_it() {
    // A server of its own: on the shared one, other tests' open writers held the daemon's
    // passes below the row it must write after losing its lock (once past the 20 s).
    let server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "sinklock").await;
    let sink = TestDb::on(&server.url(), "sinklock_sink").await;
    orders(&source, 20, false).await;
    let first = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &harness::mysql_sink(&sink, 100));
    let second = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &harness::mysql_sink(&sink, 100));
    let (mut daemon, port) = first.spawn_daemon();
    let started = Instant::now();
    while !harness::http_get(port, "/ready").is_some_and(|(s, _)| s.contains("200")) {
        assert!(started.elapsed() < Duration::from_secs(20), "the daemon becomes ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = second.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("another highwater run is writing database {}", sink.name)), "{err}");

    // The lock's session lost (killed, as a restart or wait_timeout would): before its next
    // write, more than 10 s later, the daemon takes the lock again and goes on.
    let holder = err.split("connection ").nth(1).and_then(|r| r.split(' ').next()).expect("the holder's id");
    source.exec(&format!("KILL {holder}")).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    source.exec("INSERT INTO orders VALUES (500, NOW(6), 'after the kill', 1)").await;
    let started = Instant::now();
    while sink.try_rows("SELECT 1 FROM orders WHERE id = 500").await.map_or(true, |r| r.is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(20), "the daemon writes on after its lock's session was lost");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = second.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "the lock is held again: {err}");
    assert!(!err.contains(&format!("connection {holder} ")), "by a new session: {err}");

    daemon.0.kill().expect("kill");
    daemon.0.wait().expect("reaped");
    // Its session, and so the lock, goes with it.
    second.run_once();
    source.drop_db().await;
    sink.drop_db().await;
}
