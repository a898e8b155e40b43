//! Never lose a row (issue 5): late commits, deletes, schema changes, source resets, faults.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::harness::{self, KillOnDrop, Pipeline, TestDb, TestUser, assert_same_rows, mysql_sink, read_parquet};
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

/// A daemon copying a 100-row `orders` into MySQL, its first copy in the sink.
struct Copied {
    source: TestDb,
    sink: TestDb,
    pipeline: Pipeline,
    daemon: KillOnDrop,
    /// Its metrics port.
    port: u16,
}

/// Starts a [`Copied`] daemon on `server` with `lag_secs` that never waits for an open writer,
/// so that every pass runs while the test holds one open.
async fn copied_daemon(server: &str, name: &str, lag_secs: u64) -> Copied {
    let source = TestDb::on(server, name).await;
    let sink = TestDb::on(server, &format!("{name}_sink")).await;
    orders(&source, 100, false).await;
    let pipeline = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, &mysql_sink(&sink, 50));
    pipeline.set_open_transaction_wait(0);
    let config = std::fs::read_to_string(&pipeline.config).expect("config");
    let config = config.replacen("lag_secs = 0", &format!("lag_secs = {lag_secs}"), 1);
    std::fs::write(&pipeline.config, config).expect("config");
    let (mut daemon, port) = pipeline.spawn_daemon();
    until(&mut daemon, 30, "the first copy", async || sink.try_rows("SELECT 1 FROM orders").await.is_ok()).await;
    until(&mut daemon, 30, "the first copy", async || sink.count("orders").await == 100).await;
    Copied { source, sink, pipeline, daemon, port }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_of_a_transaction_that_commits_late_all_arrive() {
    // A server of its own, as every test that holds a writer open (see the next test).
    let server = harness::OwnServer::start();
    let Copied { source, sink, pipeline: p, mut daemon, port } = copied_daemon(&server.url(), "late", 0).await;

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

    drop(writer);
    source.drop_db().await;
    sink.drop_db().await;

    // A login without PROCESS cannot see open transactions: `check` says what that means
    // (on the shared server, where the tests' logins are made).
    let shared = TestDb::new("late_check").await;
    orders(&shared, 10, false).await;
    let user = TestUser::new(&shared, &[&shared]).await;
    let limited = Pipeline::new(&user.url(&shared), &[("orders", "update_time")], 50, &p.parquet_sink());
    let (_, out) = limited.subcommand(&["check"]);
    assert!(out.contains("open transactions are not visible") && out.contains("PROCESS"), "{out}");
    user.drop_user(&shared).await;
    shared.drop_db().await;
}

/// A statement stamps its rows when it begins, but InnoDB starts its transaction at its first
/// row: an `INSERT ... SELECT` that computes first writes rows stamped before its transaction's
/// `trx_started`. Rows committed meanwhile, stamped after them, must wait for it all the same.
#[tokio::test(flavor = "multi_thread")]
async fn rows_stamped_before_their_transaction_started_still_arrive() {
    // A server of its own: the writer it holds open for seconds would hold every other test's
    // bound on a shared one (open transactions are the server's, not a database's), and
    // theirs would hold its own.
    let server = harness::OwnServer::start();
    // A statement is granted lag_secs between its start and its first row: 4 s for the 1.5 s
    // this one takes, so that a loaded machine's delays do not go beyond it.
    let Copied { source, sink, mut daemon, .. } = copied_daemon(&server.url(), "slow_start", 4).await;

    // The writer's rows are stamped at T; its first row, and its transaction, come at T + 1.5 s.
    let mut writer = source.conn().await;
    writer.query_drop("BEGIN").await.expect("begin");
    let insert = tokio::spawn(async move {
        writer
            .query_drop(
                "INSERT INTO orders SELECT 3000 + seq, NOW(6), 'slow', 1 FROM seq_1_to_5 \
                 WHERE SLEEP(IF(seq = 1, 1.5, 0)) = 0",
            )
            .await
            .expect("the writer's insert");
        writer
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Committed at T + 0.2 s, while the writer computes: read past, they would carry the
    // checkpoint beyond the writer's rows.
    source.exec("INSERT INTO orders SELECT 4000 + seq, NOW(6), 'between', 1 FROM seq_1_to_5").await;
    let mut writer = insert.await.expect("the writer's task");
    // Passes run every second while the writer stays open, past the lag from T + 0.2 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    writer.query_drop("COMMIT").await.expect("commit");
    let expected = source.canonical("orders").await;
    until(&mut daemon, 30, "the writer's rows", async || sink.canonical("orders").await == expected).await;
    drop(writer);
    source.drop_db().await;
    sink.drop_db().await;
}

/// The sink's checkpoint row count for the test pipeline, if the sink answers.
async fn sink_rows_loaded(sink: &TestDb) -> Option<u64> {
    let rows = sink.try_rows("SELECT rows_loaded FROM _highwater_checkpoints").await.ok()?;
    rows.first()?.first()?.as_deref()?.parse().ok()
}

/// Runs `sql` until the server answers (its pooled sessions died with a restart).
async fn rows_after_restart(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    for _ in 0..50 {
        if let Ok(rows) = db.try_rows(sql).await {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql}: the server does not answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_mid_pass_is_retried_and_loses_nothing() {
    let mut server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "restart").await;
    let sink = TestDb::on(&server.url(), "restart_sink").await;
    orders(&source, 100_000, false).await;
    // Bulk loads commit at every 1 MiB of rows: the checkpoint moves during the copy.
    let sink_config = format!("{}\nbulk_commit_mb = 1", mysql_sink(&sink, 500));
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 1_000, &sink_config);
    p.add_pipeline_setting("retry_for_secs = 120");
    let log = p.dir.path().join("run.log");
    let stderr = std::fs::File::create(&log).expect("log");
    let mut run = KillOnDrop(p.command().arg("--once").stderr(stderr).spawn().expect("highwater starts"));

    let deadline = Instant::now() + Duration::from_secs(120);
    while sink_rows_loaded(&sink).await.is_none_or(|n| n < 10_000) {
        assert!(run.0.try_wait().expect("wait").is_none(), "finished before the restart");
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop("TERM");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(run.0.try_wait().expect("wait").is_none(), "highwater gave up while the server was down");
    server.resume();

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let server_log = server.log();
            let lines: Vec<&str> = server_log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            panic!(
                "highwater did not finish within 120 s of the restart; its log:\n{text}\nthe server's, last lines:\n{tail}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "the run recovers from the restart: {status}\n{text}");
    assert!(text.contains("failed, retrying"), "the retries are logged:\n{text}");
    let expected = {
        rows_after_restart(&source, "SELECT 1").await;
        source.canonical("orders").await
    };
    rows_after_restart(&sink, "SELECT 1").await;
    assert_same_rows("after the restart", &expected, &sink.canonical("orders").await, &[]);
}

/// A small deterministic generator, so that a failing run can be repeated from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Inserts and updates rows until `stop`, a statement every few milliseconds.
async fn write_until(source: &TestDb, stop: &std::sync::atomic::AtomicBool) -> u64 {
    let mut conn = source.conn().await;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let sql = if n.is_multiple_of(3) {
            format!(
                "UPDATE orders SET name = 'changed {n}', amount = amount + 1, update_time = NOW(6) WHERE id % 97 = {}",
                n % 97
            )
        } else {
            format!("INSERT INTO orders SELECT 1000000 + {n} * 10 + seq, NOW(6), 'new {n}', {n} FROM seq_1_to_5")
        };
        conn.query_drop(sql).await.expect("the writer's statement");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

/// The sink's `(id -> update_time)`, to check that no row ever goes back in time.
async fn versions(sink: &TestDb) -> std::collections::HashMap<String, String> {
    let rows =
        sink.try_rows("SELECT id, DATE_FORMAT(update_time, '%Y%m%d%H%i%s%f') FROM orders").await.unwrap_or_default();
    rows.into_iter().filter_map(|r| Some((r[0].clone()?, r[1].clone()?))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_twenty_times_under_a_writer_loses_nothing_and_doubles_nothing() {
    let source = TestDb::new("kill20").await;
    let sink = TestDb::new("kill20_sink").await;
    orders(&source, 20_000, false).await;
    let mysql = Pipeline::new(&source.url(), &[("orders", "update_time")], 500, &mysql_sink(&sink, 250));
    let parquet = Pipeline::new(&source.url(), &[("orders", "update_time")], 500, "");
    parquet.set_sink(&parquet.parquet_sink());
    for p in [&mysql, &parquet] {
        p.set_open_transaction_wait(1);
        p.serve_metrics_on_a_free_port();
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let mut random = Lcg(seed);
    eprintln!("kill moments seed: {seed}");

    let stop = std::sync::atomic::AtomicBool::new(false);
    let kills = async {
        let mut seen = versions(&sink).await;
        let mut regressions = Vec::new();
        for round in 0..20 {
            let (p, name) = if round % 2 == 0 { (&mysql, "mysql") } else { (&parquet, "parquet") };
            let mut daemon = KillOnDrop(p.command().spawn().expect("highwater starts"));
            tokio::time::sleep(Duration::from_millis(200 + random.below(1300))).await;
            assert!(daemon.0.try_wait().expect("wait").is_none(), "the {name} daemon exited on its own");
            daemon.0.kill().expect("SIGKILL");
            daemon.0.wait().expect("reaped");
            let now = versions(&sink).await;
            for (id, old) in &seen {
                match now.get(id) {
                    Some(new) if new >= old => {}
                    other => regressions.push(format!("round {round}: row {id} went from {old} to {other:?}")),
                }
            }
            seen = now;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        regressions
    };
    let (regressions, statements) = tokio::join!(kills, write_until(&source, &stop));
    assert!(regressions.is_empty(), "rows moved back in time: {regressions:?}");
    assert!(statements > 100, "the writer kept writing: {statements} statements");

    // The writer has stopped: one last run of each catches up, and the sinks equal the source.
    // (Waiting out whatever other tests are writing to the shared server meanwhile.)
    for p in [&mysql, &parquet] {
        p.set_open_transaction_wait(30);
    }
    mysql.run_once();
    parquet.run_once();
    let expected = source.canonical("orders").await;
    assert_same_rows("mysql after 10 kills", &expected, &sink.canonical("orders").await, &[]);
    let files = read_parquet(&parquet.out().join("orders"), &["id"], "update_time");
    assert_same_rows("parquet after 10 kills", &expected, &files.rows, &[]);
    assert_eq!(files.file_rows, files.versions, "no version of a row is in two files");
    source.drop_db().await;
    sink.drop_db().await;
}

/// A database whose `events` holds 40,000 rows of about 1 KB, their dates (`at`) all over 2025
/// whatever their key: a copy into Parquet keeps them by date.
async fn scattered_events(tag: &str) -> TestDb {
    let source = TestDb::new(tag).await;
    source
        .exec(
            "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NOT NULL, pad VARCHAR(1100) NOT NULL, KEY (at)); \
             INSERT INTO events SELECT seq, '2025-01-01' + INTERVAL (seq * 7919 % 365) DAY + INTERVAL seq SECOND, \
             REPEAT(MD5(seq), 32) FROM seq_1_to_40000",
        )
        .await;
    source
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_copy_whose_rows_are_kept_by_date_loses_nothing_and_doubles_nothing() {
    // Batches of 200 span about 160 dates, so the sink keeps the rows by date, and with
    // `commit_mb = 1` makes them durable in groups of 8 MiB of rows, a checkpoint each.
    let source = scattered_events("kill_scatter").await;
    let p = Pipeline::new(&source.url(), &[("events", "at")], 200, "");
    p.set_sink(&format!("{}\ncommit_mb = 1", p.parquet_sink()));
    p.serve_metrics_on_a_free_port();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let mut random = Lcg(seed);
    eprintln!("kill moments seed: {seed}");
    let position = || -> serde_json::Value {
        let state: serde_json::Value = std::fs::read_to_string(p.state_file())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        state["tables"][0]["position"].clone()
    };
    // Each run is killed at a random moment after its first checkpoint: inside a group, while
    // it writes its files, or between the rename and the checkpoint; until the copy is done.
    let mut resumed_from = Vec::new();
    for _ in 0..10 {
        let before = position();
        let mut daemon = KillOnDrop(p.command().spawn().expect("highwater starts"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while position() == before {
            assert!(Instant::now() < deadline, "no checkpoint within 60 s");
            assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon exited on its own");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(random.below(500))).await;
        daemon.0.kill().expect("SIGKILL");
        daemon.0.wait().expect("reaped");
        let now = position();
        if now["phase"] != "copy" {
            break;
        }
        resumed_from.push(now["key"][0].to_string());
    }
    assert!(!resumed_from.is_empty(), "no kill found the copy past its first group");
    eprintln!("killed in the copy after keys {resumed_from:?}");

    p.run_once();
    let files = read_parquet(&p.out().join("events"), &["id"], "at");
    assert_same_rows("parquet after the kills", &source.canonical("events").await, &files.rows, &[]);
    assert_eq!(files.file_rows, files.versions, "no row is in two files (resumed from keys {resumed_from:?})");
    assert!(files.files.len() < 365 * 10, "a file per date and group: {}", files.files.len());
    let left: Vec<String> = harness::files_below(&p.out()).into_iter().filter(|f| f.ends_with(".tmp")).collect();
    assert!(left.is_empty(), "what the killed runs left half-written is gone: {left:?}");
    source.drop_db().await;
}

/// A tmpfs of `size` mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at)
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `run --once` of `p`, whose output directory is a disk too small: asserts that it fails
/// (exit 1) naming the directory and the full disk, and returns its log.
fn run_onto_a_full_disk(p: &Pipeline) -> String {
    let out = p.command().arg("--once").output().expect("highwater runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "a full disk fails the run: {stderr}");
    assert!(stderr.contains("No space left on device") && stderr.contains(&p.out().display().to_string()), "{stderr}");
    stderr
}

#[tokio::test]
async fn a_full_disk_fails_clearly_leaves_no_partial_file_and_keeps_the_checkpoint() {
    let source = TestDb::new("full").await;
    source
        .exec(
            "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL, \
             name TEXT NOT NULL, amount DECIMAL(12,2), KEY (update_time)); \
             INSERT INTO orders SELECT seq, '2026-01-01' + INTERVAL seq SECOND, \
             CONCAT(SHA2(seq, 512), SHA2(seq + 1, 512)), seq FROM seq_1_to_30000",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 1_000, "");
    // Files made durable every MiB, so that some are before the disk fills.
    p.set_sink(&format!("{}\ncommit_mb = 1", p.parquet_sink()));
    let disk = SmallDisk::mount(p.out(), "2m");

    run_onto_a_full_disk(&p);

    // Every visible file is whole (pyarrow reads them all), no temporary file is left (the
    // hidden files are the sink's record of its last group and the output's lock), and the
    // checkpoint counts exactly the rows in them.
    let hidden: Vec<_> = harness::files_below(&p.out())
        .into_iter()
        .filter(|f| {
            f.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with('.') && ![".hw-group.json", ".highwater.lock"].contains(&n))
        })
        .collect();
    assert!(hidden.is_empty(), "temporary files left: {hidden:?}");
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert!(files.file_rows > 0 && files.file_rows < 30_000, "the disk filled midway: {} rows", files.file_rows);
    let state = std::fs::read_to_string(p.state_file()).expect("a checkpoint for the files written");
    assert!(state.contains(&format!("\"rows_loaded\": {}", files.file_rows)), "{state}");

    // With room again, the next run goes on from the checkpoint.
    disk.grow("64m");
    p.run_once();
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_eq!(files.file_rows, 30_000, "no row twice");
    assert_same_rows("after the disk grew", &source.canonical("orders").await, &files.rows, &[]);
    drop(disk);
    source.drop_db().await;
}

#[tokio::test]
async fn a_disk_that_fills_while_rows_are_kept_by_date_fails_clearly_and_the_next_run_loses_nothing() {
    let source = scattered_events("full_scatter").await;
    // With `commit_mb = 1` a group is made durable at 8 MiB of rows, from memory: the disk
    // fills with the date files. With 4, the rows pass 16 MiB first and go to a round on disk:
    // it fills with the round.
    for (commit_mb, filling) in [(1, "part-"), (4, ".part-spill-")] {
        let p = Pipeline::new(&source.url(), &[("events", "at")], 200, "");
        p.set_sink(&format!("{}\ncommit_mb = {commit_mb}", p.parquet_sink()));
        let disk = SmallDisk::mount(p.out(), "2m");

        let stderr = run_onto_a_full_disk(&p);
        assert!(
            stderr.contains(&format!("/{filling}")),
            "commit_mb = {commit_mb}: the disk fills writing {filling}: {stderr}"
        );
        let left: Vec<String> = harness::files_below(&p.out()).into_iter().filter(|f| f.ends_with(".tmp")).collect();
        assert!(left.is_empty(), "the failed run's rounds and temporary files are gone: {left:?}");
        // What a checkpoint counts is in the files, and no more.
        let table = p.out().join("events");
        let written = if table.exists() { read_parquet(&table, &["id"], "at").file_rows } else { 0 };
        let state = std::fs::read_to_string(p.state_file()).unwrap_or_default();
        assert!(
            written == 0 || state.contains(&format!("\"rows_loaded\": {written}")),
            "{written} rows in files: {state}"
        );

        disk.grow("256m");
        p.run_once();
        let files = read_parquet(&table, &["id"], "at");
        assert_same_rows("after the disk grew", &source.canonical("events").await, &files.rows, &[]);
        assert_eq!(files.file_rows, 40_000, "commit_mb = {commit_mb}: no row twice");
        drop(disk);
    }
    source.drop_db().await;
}

#[tokio::test]
async fn soft_deletes_remove_rows_from_mysql_and_are_recorded_in_parquet() {
    let source = TestDb::new("soft").await;
    let sink = TestDb::new("soft_sink").await;
    source
        .exec(
            "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL, \
             name VARCHAR(64) NOT NULL, deleted_at DATETIME NULL, KEY (update_time)); \
             INSERT INTO orders SELECT seq, '2026-01-01' + INTERVAL seq SECOND, CONCAT('order ', seq), NULL \
             FROM seq_1_to_100; \
             CREATE TABLE expected LIKE orders",
        )
        .await;
    let table = "{ name = \"orders\", cursor = \"update_time\", soft_delete = \"deleted_at\" }";
    let mysql = Pipeline::new(&source.url(), &[], 30, &mysql_sink(&sink, 30));
    let parquet = Pipeline::new(&source.url(), &[], 30, "");
    parquet.set_sink(&parquet.parquet_sink());
    for p in [&mysql, &parquet] {
        let text =
            std::fs::read_to_string(&p.config).expect("config").replace("tables = []", &format!("tables = [{table}]"));
        std::fs::write(&p.config, text).expect("config");
    }
    let live = async || {
        source.exec("DELETE FROM expected; INSERT INTO expected SELECT * FROM orders WHERE deleted_at IS NULL").await;
        source.canonical("expected").await
    };
    let changes = [
        // Ten rows deleted, one of them in the same batch as live rows.
        "UPDATE orders SET deleted_at = NOW(), update_time = NOW(6) WHERE id % 10 = 3",
        // Two come back, one is deleted for good with its content changed.
        "UPDATE orders SET deleted_at = NULL, name = 'restored', update_time = NOW(6) WHERE id IN (13, 23); \
         UPDATE orders SET deleted_at = NOW(), name = 'gone', update_time = NOW(6) WHERE id = 50",
    ];
    for (pass, change) in std::iter::once("").chain(changes).enumerate() {
        if !change.is_empty() {
            source.exec(change).await;
        }
        mysql.run_once();
        parquet.run_once();
        let expected = live().await;
        assert_same_rows(&format!("mysql, pass {pass}"), &expected, &sink.canonical("orders").await, &[]);
        let files = read_parquet(&parquet.out().join("orders"), &["id"], "update_time");
        assert_same_rows(&format!("parquet, pass {pass}"), &expected, &files.rows, &[]);
    }
    assert_eq!(sink.count("orders").await, 91);

    // A soft-delete column that does not exist is named, with its config key.
    let text = std::fs::read_to_string(&mysql.config).expect("config").replace("\"deleted_at\"", "\"removed_at\"");
    std::fs::write(&mysql.config, text).expect("config");
    let out = mysql.command().arg("--once").output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("removed_at") && stderr.contains("source.tables[0].soft_delete"),
        "{stderr}"
    );
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn odd_table_and_column_names_are_quoted_in_every_statement() {
    let source = TestDb::new("odd").await;
    let sink = TestDb::new("odd_sink").await;
    let table = "o`dd \"tab\" é's";
    source
        .exec(
            "CREATE TABLE `o``dd \"tab\" é's` (`id key` BIGINT UNSIGNED NOT NULL, `k``2` VARCHAR(8) NOT NULL, \
             `up``date` DATETIME(6) NOT NULL, `naïve \"col\"` VARCHAR(20), `it's` INT, `gone?` DATETIME NULL, \
             PRIMARY KEY (`id key`, `k``2`)) DEFAULT CHARSET=utf8mb4; \
             INSERT INTO `o``dd \"tab\" é's` SELECT seq, IF(seq % 2, 'a`', 'b\"'), '2026-01-01' + INTERVAL seq SECOND, \
             CONCAT('ünï ', seq), seq, NULL FROM seq_1_to_50",
        )
        .await;
    let entry = "{ name = \"o`dd \\\"tab\\\" é's\", cursor = \"up`date\", soft_delete = \"gone?\" }";
    let p = Pipeline::new(&source.url(), &[], 7, &mysql_sink(&sink, 5));
    let text =
        std::fs::read_to_string(&p.config).expect("config").replace("tables = []", &format!("tables = [{entry}]"));
    std::fs::write(&p.config, text).expect("config");

    // `check` explains the missing cursor index, and `indexes --apply` adds it.
    let (code, out) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{out}");
    let (code, out) = p.subcommand(&["indexes", "--apply"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("`o``dd \"tab\" é's`") && out.contains("`up``date`"), "{out}");
    let (code, out) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "{out}");

    p.run_once();
    source.exec("UPDATE `o``dd \"tab\" é's` SET `it's` = -1, `up``date` = NOW(6) WHERE `id key` <= 5").await;
    source.exec("UPDATE `o``dd \"tab\" é's` SET `gone?` = NOW(), `up``date` = NOW(6) WHERE `id key` = 9").await;
    p.run_once();
    source.exec("DELETE FROM `o``dd \"tab\" é's` WHERE `id key` = 9").await;
    assert_same_rows("mysql", &source.canonical(table).await, &sink.canonical(table).await, &[]);

    p.set_sink(&p.parquet_sink());
    p.run_once();
    let files = read_parquet(&p.out().join(table), &["id key", "k`2"], "up`date");
    assert_same_rows("parquet", &source.canonical(table).await, &files.rows, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

/// `highwater run --once` with extra flags: (success, stderr).
fn run_with(p: &Pipeline, flags: &[&str]) -> (bool, String) {
    let out = p.command().arg("--once").args(flags).output().expect("highwater runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_evolve_the_sink_or_stop_only_their_table() {
    let source = TestDb::new("schema").await;
    let sink = TestDb::new("schema_sink").await;
    orders(&source, 100, false).await;
    source
        .exec(
            "CREATE TABLE customers (id INT PRIMARY KEY, update_time DATETIME(6) NOT NULL, KEY (update_time)); \
             INSERT INTO customers SELECT seq, '2026-01-01' FROM seq_1_to_10",
        )
        .await;
    let tables = [("orders", "update_time"), ("customers", "update_time")];
    let mysql = Pipeline::new(&source.url(), &tables, 40, &mysql_sink(&sink, 40));
    let parquet = Pipeline::new(&source.url(), &tables, 40, "");
    parquet.set_sink(&parquet.parquet_sink());
    mysql.run_once();
    parquet.run_once();

    // A new column: the MySQL target gains it, new Parquet files carry it.
    source
        .exec(
            "ALTER TABLE orders ADD COLUMN note VARCHAR(32) NULL; \
             UPDATE orders SET note = 'noted ✓', update_time = NOW(6) WHERE id <= 5",
        )
        .await;
    mysql.run_once();
    parquet.run_once();
    assert_same_rows("mysql, added column", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    let files = read_parquet(&parquet.out().join("orders"), &["id"], "update_time");
    assert!(files.types.contains_key("note"), "{:?}", files.types);
    assert_same_rows("parquet, added column", &source.canonical("orders").await, &files.rows, &[]);

    // A dropped column stops its table, run after run; the other table goes on.
    source.exec("ALTER TABLE orders DROP COLUMN amount").await;
    source.exec("INSERT INTO customers SELECT 100 + seq, NOW(6) FROM seq_1_to_5").await;
    for attempt in 0..2 {
        let (ok, stderr) = run_with(&mysql, &[]);
        assert!(!ok, "attempt {attempt}: a dropped column fails the run");
        assert!(stderr.contains("orders changed: column amount (decimal(12,2)) was dropped"), "{stderr}");
        assert_eq!(sink.count("customers").await, 15, "the other table goes on");
    }
    let (_, status) = mysql.subcommand(&["status", "--json"]);
    assert!(status.contains("was dropped"), "status shows the stopped table: {status}");

    // The operator aligns the sink and accepts; later runs go on as usual.
    sink.exec("ALTER TABLE orders DROP COLUMN amount").await;
    source.exec("UPDATE orders SET name = 'after the change', update_time = NOW(6) WHERE id = 7").await;
    let (ok, stderr) = run_with(&mysql, &["--accept-schema-change"]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = run_with(&mysql, &[]);
    assert!(ok, "the accepted schema is the one compared from now on: {stderr}");
    assert_same_rows("mysql, accepted", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    // Under a daemon: a new column evolves it, a retyped one stops only its table.
    let (mut daemon, _) = mysql.spawn_daemon();
    source
        .exec(
            "ALTER TABLE orders ADD COLUMN tag INT NULL; UPDATE orders SET tag = 7, update_time = NOW(6) WHERE id = 9",
        )
        .await;
    until(&mut daemon, 30, "the new column", async || {
        sink.try_rows("SELECT tag FROM orders WHERE id = 9").await.is_ok_and(|r| r[0][0].as_deref() == Some("7"))
    })
    .await;
    source.exec("ALTER TABLE orders MODIFY name VARCHAR(16) NOT NULL").await;
    source.exec("UPDATE orders SET tag = 8, update_time = NOW(6) WHERE id = 10").await;
    source.exec("INSERT INTO customers SELECT 200 + seq, NOW(6) FROM seq_1_to_5").await;
    until(&mut daemon, 30, "the other table", async || sink.count("customers").await == 20).await;
    assert!(daemon.0.try_wait().expect("wait").is_none(), "the daemon goes on with the other table");
    let tag = sink.rows("SELECT tag FROM orders WHERE id = 10").await;
    assert_eq!(tag[0][0], None, "the retyped table stopped: its later change was not copied");
    until(&mut daemon, 10, "the error in status", async || {
        mysql
            .subcommand(&["status", "--json"])
            .1
            .contains("column name changed from varchar(64) NOT NULL to varchar(16) NOT NULL")
    })
    .await;
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_or_replaced_source_stops_until_the_reset_is_accepted() {
    let source = TestDb::new("reset").await;
    let sink = TestDb::new("reset_sink").await;
    orders(&source, 100, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 40, &mysql_sink(&sink, 40));
    p.run_once();

    // A restore from an older backup: the newest rows are gone, and rows changed since the
    // backup are older than the checkpoint.
    source.exec("DELETE FROM orders WHERE id > 60; UPDATE orders SET name = 'restored' WHERE id = 3").await;
    let (ok, stderr) = run_with(&p, &[]);
    assert!(
        !ok && stderr.contains("older than the checkpoint") && stderr.contains("--accept-source-reset"),
        "{stderr}"
    );
    assert_eq!(sink.count("orders").await, 100, "nothing was read");
    let (ok, stderr) = run_with(&p, &["--accept-source-reset"]);
    assert!(ok, "{stderr}");
    let row = sink.rows("SELECT name FROM orders WHERE id = 3").await;
    assert_eq!(row[0][0].as_deref(), Some("restored"), "the table was read again from the start");
    p.run_once();

    // Another server behind the URL, holding the same database and rows: refused until accepted.
    let other = harness::OwnServer::start();
    let mut conn = mysql_async::Conn::from_url(other.url()).await.expect("the other server");
    conn.query_drop(format!("CREATE DATABASE `{}`", source.name)).await.expect("database");
    drop(conn);
    let copy = format!("{}/{}", other.url(), source.name);
    let mut conn = mysql_async::Conn::from_url(copy.as_str()).await.expect("the copy");
    conn.query_drop(
        "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL, \
         name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), KEY (update_time)) DEFAULT CHARSET=utf8mb4",
    )
    .await
    .expect("table");
    let rows =
        source.rows("SELECT id, DATE_FORMAT(update_time, '%Y-%m-%d %H:%i:%s.%f'), name, amount FROM orders").await;
    for r in rows {
        conn.exec_drop(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()),
        )
        .await
        .expect("row");
    }
    drop(conn);
    let config = std::fs::read_to_string(&p.config).expect("config").replace(&source.url(), &copy);
    std::fs::write(&p.config, config).expect("config");
    let (ok, stderr) = run_with(&p, &[]);
    assert!(!ok && stderr.contains("another server"), "{stderr}");
    let (ok, stderr) = run_with(&p, &["--accept-source-reset"]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = run_with(&p, &[]);
    assert!(ok, "the new server is the one compared from now on: {stderr}");
    // Every source row is current in the sink; the rows the restore lost stay there (hard
    // deletes are not seen by polling).
    let (expected, mut held) = (source.canonical("orders").await, sink.canonical("orders").await);
    held.retain(|k, _| expected.contains_key(k));
    assert_same_rows("after the failover", &expected, &held, &[]);
    assert_eq!(sink.count("orders").await, 100);
    source.drop_db().await;
    sink.drop_db().await;
}

/// The Matomo preset over the fixture, with `reread_secs`.
fn matomo_pipeline(source: &TestDb, sink: &str, reread_secs: u64) -> Pipeline {
    let p = Pipeline::new(&source.url(), &[], 300, sink);
    let text = std::fs::read_to_string(&p.config).expect("config");
    let text = text
        .replacen("type = \"mysql\"\nurl", &format!("type = \"matomo\"\nreread_secs = {reread_secs}\nurl"), 1)
        .replace("tables = []\n", "");
    std::fs::write(&p.config, text).expect("config");
    p
}

/// What Matomo does without moving any time column: the time spent on the latest action is
/// written onto it when the next one arrives, and a visit's IP is anonymised in place.
const MATOMO_IN_PLACE: &str = "UPDATE matomo_log_link_visit_action SET time_spent = 4242 \
     ORDER BY server_time DESC, idlink_va DESC LIMIT 1; \
     UPDATE matomo_log_visit SET location_ip = UNHEX('0A000000') \
     ORDER BY visit_last_action_time DESC, idvisit DESC LIMIT 1";

#[tokio::test(flavor = "multi_thread")]
async fn reread_catches_matomo_rows_that_change_without_their_time_moving() {
    // A server of its own: on the shared one, its daemon's passes each waited for other tests'
    // open writers (up to 30 s per writer), and the changed row once missed its 30 s.
    let server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "reread").await;
    let sink = TestDb::on(&server.url(), "reread_sink").await;
    source.load_matomo_fixture();
    let tables = ["matomo_log_link_visit_action", "matomo_log_visit"];

    // MySQL, pass by pass: the window is read again and the guard takes the equal cursor.
    let mysql = matomo_pipeline(&source, &mysql_sink(&sink, 100), 3600);
    mysql.run_once();
    source.exec(MATOMO_IN_PLACE).await;
    mysql.run_once();
    for table in tables {
        assert_same_rows(table, &source.canonical(table).await, &sink.canonical(table).await, &[]);
    }

    // Parquet, as a daemon: passes go on without writing anything until a row changes, and then
    // only that row is written again.
    let parquet = matomo_pipeline(&source, "", 3600);
    parquet.set_sink(&parquet.parquet_sink());
    let actions = || read_parquet(&parquet.out().join("matomo_log_link_visit_action"), &["idlink_va"], "server_time");
    let (mut daemon, _) = parquet.spawn_daemon();
    let expected = source.canonical("matomo_log_link_visit_action").await;
    until(&mut daemon, 60, "the first copy", async || {
        parquet.out().join("matomo_log_visit").exists() && actions().rows.len() == expected.len()
    })
    .await;
    let before = actions().file_rows;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(actions().file_rows, before, "passes over unchanged rows write nothing");
    source.exec("UPDATE matomo_log_link_visit_action SET time_spent = 777 ORDER BY server_time DESC, idlink_va DESC LIMIT 1").await;
    let expected = source.canonical("matomo_log_link_visit_action").await;
    let columns = source.columns("matomo_log_link_visit_action").await;
    let spent = columns.iter().position(|(n, _)| n == "time_spent").expect("time_spent");
    let floats: Vec<usize> =
        columns.iter().enumerate().filter(|(_, (_, t))| t == "float" || t == "double").map(|(i, _)| i).collect();
    let changed =
        expected.iter().find(|(_, r)| r[spent].as_deref() == Some("777")).map(|(k, _)| k.clone()).expect("the row");
    until(&mut daemon, 30, "the changed row", async || {
        actions().rows.get(&changed).is_some_and(|r| r[spent].as_deref() == Some("777"))
    })
    .await;
    assert_same_rows("parquet after the change", &expected, &actions().rows, &floats);
    assert_eq!(actions().file_rows, before + 1, "only the changed row was written again");
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn reconcile_deletes_what_the_source_deleted_and_reads_only_the_ranges_that_differ() {
    let source = TestDb::new("reconcile").await;
    let sink = TestDb::new("reconcile_sink").await;
    orders(&source, 20_000, false).await;
    source.exec("ANALYZE TABLE orders").await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 5_000, &mysql_sink(&sink, 1_000));
    p.run_once();
    // Hard deletes in ten places, and a row not replicated yet: polling sees none of it.
    source.exec("DELETE FROM orders WHERE id IN (1, 2, 777, 5000, 9999, 10000, 12345, 15555, 19998, 20000)").await;
    source.exec("INSERT INTO orders VALUES (30000, NOW(6), 'not yet copied', 1)").await;
    assert_eq!(sink.count("orders").await, 20_000);

    let (code, out) = p.subcommand(&["reconcile", "--chunk-rows", "1000", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("10 rows to delete (dry run)") && out.contains("1 not yet in the sink"), "{out}");
    assert_eq!(sink.count("orders").await, 20_000, "a dry run deletes nothing");

    let (code, out) = p.subcommand(&["reconcile", "--chunk-rows", "1000"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("10 rows deleted"), "{out}");
    // Ten deletes fall in at most eight ranges of ~1000 keys, plus the range of the new row:
    // keys are fetched from those alone, never from the whole table.
    let fetched: usize = out
        .split(" keys fetched")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("keys fetched");
    assert!(fetched < 20_000, "keys fetched follow the difference: {out}");
    let mut expected = source.canonical("orders").await;
    expected.retain(|k, _| k != "30000");
    assert_same_rows("after reconcile", &expected, &sink.canonical("orders").await, &[]);

    let (_, out) = p.subcommand(&["reconcile", "--chunk-rows", "1000"]);
    assert!(out.contains("0 rows deleted") && out.contains("1 differed"), "only the new row's range differs: {out}");
    source.drop_db().await;
    sink.drop_db().await;
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, made with
/// `openssl` in `dir`; and a second authority that signed nothing. Returns their paths.
fn make_certs(dir: &std::path::Path) -> (String, String, String, String) {
    let openssl = |args: &str| {
        let out = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=highwater-test-ca");
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=another-ca");
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext",
    );
    let path = |name: &str| dir.join(name).display().to_string();
    (path("ca.pem"), path("server.pem"), path("server.key"), path("other.pem"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_source_and_sink_is_required_verified_and_refused_with_the_wrong_authority() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key, other_ca) = make_certs(certs.path());
    let server = harness::OwnServer::start_with(&[
        format!("--ssl-ca={ca}"),
        format!("--ssl-cert={cert}"),
        format!("--ssl-key={key}"),
    ]);
    let source = TestDb::on(&server.url(), "tls").await;
    let sink = TestDb::on(&server.url(), "tls_sink").await;
    orders(&source, 500, false).await;
    let password = "Tls-pw-5c81e2";
    source.exec(&format!("CREATE USER 'secure'@'%' IDENTIFIED BY '{password}' REQUIRE SSL")).await;
    source.exec("GRANT ALL ON *.* TO 'secure'@'%'").await;
    let url = |db: &TestDb| format!("mysql://secure:{password}@127.0.0.1:{}/{}", server.port, db.name);
    let sink_table = |tls: &str| format!("type = \"mysql\"\nurl = \"{}\"\n{tls}", url(&sink));
    let p = Pipeline::new(&url(&source), &[("orders", "update_time")], 100, &sink_table(""));

    // The login requires TLS: without it the server refuses, and the error says where.
    let (ok, stderr) = run_with(&p, &[]);
    assert!(!ok && stderr.contains("source.url") && stderr.contains("secure:***@"), "{stderr}");
    assert!(!stderr.contains(password), "the password is not printed: {stderr}");

    // Encrypted without checking the certificate, then verified against the test's authority.
    p.add_source_setting("ssl_mode = \"required\"");
    p.set_sink(&sink_table("ssl_mode = \"required\""));
    let (ok, stderr) = run_with(&p, &[]);
    assert!(ok, "{stderr}");
    let verified = format!("ssl_mode = \"verify_identity\"\nssl_ca = \"{ca}\"");
    let text = std::fs::read_to_string(&p.config)
        .expect("config")
        .replace("ssl_mode = \"required\"\n", &format!("{verified}\n"));
    std::fs::write(&p.config, text).expect("config");
    p.set_sink(&sink_table(&verified));
    source.exec("UPDATE orders SET name = 'over tls', update_time = NOW(6) WHERE id <= 10").await;
    let (ok, stderr) = run_with(&p, &[]);
    assert!(ok, "{stderr}");
    assert_same_rows("over TLS", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    // A certificate the configured authority did not sign is refused.
    let text = std::fs::read_to_string(&p.config).expect("config").replace(&ca, &other_ca);
    std::fs::write(&p.config, text).expect("config");
    let (ok, stderr) = run_with(&p, &[]);
    assert!(
        !ok && stderr.contains("UnknownIssuer") && stderr.contains("check source.ssl_mode and source.ssl_ca"),
        "{stderr}"
    );
    assert!(!stderr.contains(password), "{stderr}");

    // Reached as `localhost`, a name the certificate does not carry (it names 127.0.0.1),
    // with the right authority: verify_identity refuses it.
    let by_name = |text: &str| text.replace(&other_ca, &ca).replace("@127.0.0.1:", "@localhost:");
    std::fs::write(&p.config, by_name(&std::fs::read_to_string(&p.config).expect("config"))).expect("config");
    let (ok, stderr) = run_with(&p, &[]);
    assert!(
        !ok && stderr.contains("not valid for name \"localhost\"") && stderr.contains("source.ssl_mode"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_stamped_in_the_second_a_pass_reads_are_not_passed() {
    let source = TestDb::new("coarse").await;
    let sink = TestDb::new("coarse_sink").await;
    source.exec("CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NOT NULL, KEY (at))").await;
    let p = Pipeline::new(&source.url(), &[("events", "at")], 1000, &mysql_sink(&sink, 1000));
    // `at` holds whole seconds and each key is below the last: within a second, a row written
    // later sorts before the rows written earlier, so a pass that read part of a second and
    // went on from its last row would never see the rest of it.
    let mut conn = source.conn().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = stop.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0;
        while !writing.load(std::sync::atomic::Ordering::SeqCst) {
            conn.query_drop(format!("INSERT INTO events VALUES ({}, NOW())", 1_000_000 - i)).await.expect("insert");
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        i
    });
    let started = Instant::now();
    let mut runs = 0;
    while runs < 4 || started.elapsed() < Duration::from_secs(2) {
        assert!(p.run_once().status.success());
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.expect("writer");
    harness::after_this_second();
    assert!(p.run_once().status.success());
    assert!(written > 100, "only {written} rows written while {runs} runs read");
    assert_same_rows("after the writer", &source.canonical("events").await, &sink.canonical("events").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}
