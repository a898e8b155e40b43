//! The Kafka bus against a real broker (tansu, started by deploy/test.sh at
//! `HIGHWATER_TEST_KAFKA`, default 127.0.0.1:9092) and the real MariaDB. Each test uses topics
//! and consumer groups of its own.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{self, KillOnDrop, Pipeline, TestDb, assert_same_rows, mysql_sink, read_parquet};
use crate::orders;
use mysql_async::prelude::Queryable;

fn brokers() -> String {
    let b = std::env::var("HIGHWATER_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    assert!(
        std::net::TcpStream::connect(&b).is_ok(),
        "the Kafka tests need a broker at {b}: deploy/test.sh starts tansu there"
    );
    b
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A topic prefix no other test or run uses.
fn prefix(tag: &str) -> String {
    format!("hwtest.{tag}.{}.{}.", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// `[bus]` of a test.
fn bus(prefix: &str, group: &str, encoding: &str) -> String {
    format!(
        "\n[bus]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic_prefix = \"{prefix}\"\nencoding = \"{encoding}\"\n\
         group = \"{prefix}{group}\"\npartitions = 3\nsession_timeout_secs = 6\n",
        brokers()
    )
}

fn with_bus(p: &Pipeline, bus: &str) {
    let text = std::fs::read_to_string(&p.config).expect("config");
    std::fs::write(&p.config, format!("{text}{bus}")).expect("config");
}

fn role(p: &Pipeline, role: &str) -> Command {
    let mut cmd = p.command();
    cmd.args(["--role", role]);
    cmd
}

/// A copy of `p`'s config (the same state, sink and bus) whose daemon serves its metrics on a
/// port of its own: two daemons on the default port, of one test or of two, cannot both start.
fn on_own_port(p: &Pipeline) -> Pipeline {
    let own = Pipeline::new("mysql://unused", &[], 1, "");
    std::fs::copy(&p.config, &own.config).expect("config");
    own.serve_metrics_on_a_free_port();
    own
}

/// `highwater run --role <role> --once` on `p`'s config, asserting success.
fn succeed_once(p: &Pipeline, role_name: &str) -> Output {
    let mut cmd = role(p, role_name);
    cmd.arg("--once");
    succeed(cmd)
}

fn succeed(mut cmd: Command) -> Output {
    let out = cmd.output().expect("highwater runs");
    assert!(out.status.success(), "{}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// A source of `rows` orders and an empty sink database, each its own, and a pipeline between
/// them through Kafka in `encoding`, read `batch_rows` at a time.
async fn orders_through_kafka_to_mysql(
    tag: &str,
    encoding: &str,
    rows: u32,
    batch_rows: usize,
) -> (TestDb, TestDb, Pipeline) {
    let source = TestDb::new(&format!("{tag}_src")).await;
    let sink = TestDb::new(&format!("{tag}_sink")).await;
    orders(&source, rows, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], batch_rows, &mysql_sink(&sink, 50));
    with_bus(&p, &bus(&prefix(encoding), "loader", encoding));
    (source, sink, p)
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_and_updates_reach_mysql_through_kafka_in_both_encodings() {
    for encoding in ["json", "arrow"] {
        let (source, sink, p) = orders_through_kafka_to_mysql("kafka", encoding, 300, 50).await;
        for pass in 0..2 {
            if pass == 1 {
                source
                    .exec(
                        "UPDATE orders SET name = 'changed', update_time = NOW(6) WHERE id % 10 = 0; \
                         INSERT INTO orders SELECT 1000 + seq, NOW(6), 'new ✓', NULL FROM seq_1_to_25",
                    )
                    .await;
            }
            let mut run = role(&p, "all");
            run.arg("--once").env("HIGHWATER_LOG", "warn,highwater_kafka=info");
            let out = succeed(run);
            let what = format!("{encoding} pass {pass}");
            let (expected, loaded) = (source.canonical("orders").await, sink.canonical("orders").await);
            if expected.len() != loaded.len() {
                // What the run said it extracted and loaded, to tell a bus that lost rows from a
                // loader that stopped early or a sink that dropped some (CI saw 286 of 300 rows
                // here, twice: the MySQL sink took a batch's second piece for a retry, see
                // `the_pieces_of_one_batch_on_three_partitions_all_reach_mysql`).
                eprintln!("{what}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
            assert_same_rows(&what, &expected, &loaded, &[]);
        }
        source.drop_db().await;
        sink.drop_db().await;
    }
}

/// One batch of a first copy reaches the loader as three pieces, one per partition, with the
/// same positions. The MySQL sink took a piece whose end equalled the last one's for the
/// runner's retry of a failed write, and dropped it: rows lost with exit 0. (CI saw 286 of 300
/// rows arrive, twice, when the loader kept up with the extractor and took the pieces of a
/// batch one after another.)
#[tokio::test(flavor = "multi_thread")]
async fn the_pieces_of_one_batch_on_three_partitions_all_reach_mysql() {
    for encoding in ["json", "arrow"] {
        let (source, sink, p) = orders_through_kafka_to_mysql("pieces", encoding, 30, 1000).await;
        // Published first, the batch's pieces come to the loader partition after partition.
        let extracted = String::from_utf8_lossy(&succeed_once(&p, "extract").stdout).into_owned();
        assert!(extracted.contains("30 rows      1 batches"), "one batch: {extracted}");
        succeed_once(&p, "load");
        let (expected, loaded) = (source.canonical("orders").await, sink.canonical("orders").await);
        assert_same_rows(&format!("{encoding}: one batch in three pieces"), &expected, &loaded, &[]);
        source.drop_db().await;
        sink.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_extractor_fans_out_to_a_mysql_group_and_a_parquet_group() {
    let source = TestDb::new("fan_src").await;
    let sink = TestDb::new("fan_sink").await;
    orders(&source, 400, false).await;
    let topics = prefix("fan");
    let extractor = Pipeline::new(&source.url(), &[("orders", "update_time")], 60, "");
    extractor.set_sink(&extractor.parquet_sink());
    with_bus(&extractor, &bus(&topics, "unused", "json"));
    succeed_once(&extractor, "extract");

    let to_mysql = Pipeline::new(&source.url(), &[("orders", "update_time")], 60, &mysql_sink(&sink, 50));
    with_bus(&to_mysql, &bus(&topics, "mysql", "json"));
    let to_parquet = Pipeline::new(&source.url(), &[("orders", "update_time")], 60, "");
    to_parquet.set_sink(&to_parquet.parquet_sink());
    with_bus(&to_parquet, &bus(&topics, "parquet", "json"));
    let (mut a, mut b) = (role(&to_mysql, "load"), role(&to_parquet, "load"));
    a.arg("--once");
    b.arg("--once");
    let (a, b) = (a.spawn().expect("starts"), b.spawn().expect("starts"));
    for child in [a, b] {
        let out = child.wait_with_output().expect("ends");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let expected = source.canonical("orders").await;
    assert_same_rows("mysql group", &expected, &sink.canonical("orders").await, &[]);
    let files = read_parquet(&to_parquet.out().join("orders"), &["id"], "update_time");
    assert_same_rows("parquet group", &expected, &files.rows, &[]);
    assert_eq!(files.file_rows, 400, "each row once");
    source.drop_db().await;
    sink.drop_db().await;
}

/// Waits until `ok`, for at most `secs`.
async fn until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loader_killed_mid_load_hands_its_partitions_to_the_other_and_nothing_is_lost() {
    let source = TestDb::new("group_src").await;
    let sink = TestDb::new("group_sink").await;
    orders(&source, 40_000, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 500, &mysql_sink(&sink, 100));
    with_bus(&p, &bus(&prefix("group"), "loaders", "json"));
    succeed_once(&p, "extract");

    // Two loaders of one group, each with its own metrics port.
    let loader = |port: u16| -> (Pipeline, KillOnDrop) {
        let config = std::fs::read_to_string(&p.config).expect("config");
        let own = Pipeline::new(&source.url(), &[], 500, "");
        std::fs::write(&own.config, format!("{config}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).expect("config");
        let child = role(&own, "load").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("a loader starts");
        (own, KillOnDrop(child))
    };
    let ports = [harness::free_port(), harness::free_port(), harness::free_port()];
    let (_a, first) = loader(ports[0]);
    let (_b, second) = loader(ports[1]);
    let mut loaders = [first, second];
    let loaded_by = |port: u16| {
        harness::http_get(port, "/metrics")
            .and_then(|(_, body)| harness::sample(&body, "highwater_rows_loaded_total", &["table="]))
            .unwrap_or(0.0)
    };
    let loaded = async || sink.try_rows("SELECT COUNT(*) FROM orders").await.ok().and_then(|r| r[0][0].clone());
    // tansu does not always split the partitions when the second member joins: wait for
    // loading to start, then kill the loader that holds partitions (the one loading).
    until("the loaders loading", 90, async || {
        for l in loaders.iter_mut() {
            assert!(l.0.try_wait().expect("wait").is_none(), "a loader exited");
        }
        loaded_by(ports[0]) + loaded_by(ports[1]) > 0.0
    })
    .await;
    let (victim, survivor) = if loaded_by(ports[0]) >= loaded_by(ports[1]) { (0, 1) } else { (1, 0) };
    loaders[victim].0.kill().expect("kill -9");
    let _ = loaders[victim].0.wait();
    // Counted once the killed loader can write no more: it died in the middle of the load.
    let at_kill: u32 = loaded().await.and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(at_kill < 40_000, "killed in the middle: {at_kill} of 40000 rows in");
    // Kafka's coordinator would expire the killed member after session_timeout_secs and give
    // its partitions to the survivor. tansu 0.6 expires a member only while handling a join
    // (the survivor kept heartbeating in the old generation for 90 s and never got the killed
    // loader's partition): so once the session has run out, a third loader joins, and the
    // group rebalances without the dead member. A workaround for the broker, in the test only.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (_c, _third) = loader(ports[2]);
    until("every row, after the rebalance", 120, async || loaded().await.as_deref() == Some("40000")).await;
    assert!(loaders[survivor].0.try_wait().expect("wait").is_none(), "the survivor runs on");
    // The live loaders that loaded rows say they are ready.
    let live: Vec<u16> = [ports[survivor], ports[2]].into_iter().filter(|p| loaded_by(*p) > 0.0).collect();
    assert!(!live.is_empty(), "a live loader loaded rows");
    for port in live {
        let ready = harness::http_get(port, "/ready").map(|(status, _)| status);
        assert!(ready.as_deref().is_some_and(|s| s.contains("200")), "a loading loader is ready: {ready:?}");
    }
    assert_same_rows("after the kill", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extractor_killed_mid_copy_resumes_and_nothing_is_lost() {
    let source = TestDb::new("xkill_src").await;
    let sink = TestDb::new("xkill_sink").await;
    orders(&source, 40_000, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 200, &mysql_sink(&sink, 100));
    with_bus(&p, &bus(&prefix("xkill"), "loader", "arrow"));
    let text = extract_until_killed(&p).await;
    let state: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let position = &state["tables"][0]["position"];
    assert_eq!(position["phase"], "copy", "killed before the end: {text}");
    assert!(position["key"][0]["u_int"].as_u64().is_some_and(|k| k < 40_000), "killed before the end: {text}");

    extract_and_load_once(&p);
    assert_same_rows("after the restart", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extractor_restarted_behind_what_it_published_rewrites_the_same_parquet_files() {
    // A server of its own: the run must copy every row (see the quiet-bus test).
    let server = harness::OwnServer::start();
    let (source, p) = orders_to_parquet(&server, "behind", 20_000).await;

    // An extractor publishes the whole copy; its checkpoint as it stood early in the copy is
    // kept. Put back, it is an extractor killed after the broker acknowledged those batches
    // but before it checkpointed them: they are published again, in ranges of 180 keys.
    let checkpoints = p.dir.path().join("state/test.extract.checkpoints.json");
    let mut extractor = role(&p, "extract");
    extractor.arg("--once").stdout(Stdio::null()).stderr(Stdio::null());
    let mut extractor = KillOnDrop(extractor.spawn().expect("starts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let early = loop {
        let ended = extractor.0.try_wait().expect("wait").is_some();
        if let Ok(text) = std::fs::read_to_string(&checkpoints) {
            break text;
        }
        assert!(!ended, "the extractor ended without a checkpoint");
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(extractor.0.wait().expect("ends").success());
    let state: serde_json::Value = serde_json::from_str(&early).expect("JSON");
    assert_eq!(state["tables"][0]["position"]["phase"], "copy", "kept from the middle of the copy: {early}");
    std::fs::write(&checkpoints, &early).expect("the earlier checkpoint put back");

    // Planned afresh, the ranges would now be other ones: one row far above the others (its
    // cursor above the copy's bound) makes the key span 50 million times wider.
    source.exec("INSERT INTO orders VALUES (1000000000000, NOW(6), 'far', 1)").await;
    source.exec("ANALYZE TABLE orders").await;
    extract_and_load_once(&p);
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_same_rows("after the second copy", &source.canonical("orders").await, &files.rows, &[]);
    assert_eq!((files.file_rows, files.versions), (20_001, 20_001), "each row in one file");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_once_run_of_both_roles_loads_what_its_extractor_publishes_after_a_quiet_while() {
    // A server of its own: the writer below holds every source's bound on its server.
    let server = harness::OwnServer::start();
    let (source, p) = orders_to_parquet(&server, "waits", 300).await;
    // What an earlier extractor published is on the bus when the run starts ...
    succeed_once(&p, "extract");
    source.exec("INSERT INTO orders SELECT 1000 + seq, NOW(6), 'later', 1 FROM seq_1_to_20").await;
    // ... and this run's extractor waits 8 s for a writer before it publishes the 20 rows
    // after them: longer than a quiet bus takes to end a `--once` loader (3 s).
    source.exec("CREATE TABLE other (id INT PRIMARY KEY)").await;
    let mut writer = source.conn().await;
    writer.query_drop("BEGIN").await.expect("begin");
    writer.query_drop("INSERT INTO other VALUES (1)").await.expect("a row written");
    let commit_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(8)).await;
        writer.query_drop("COMMIT").await.expect("commit");
    });
    let started = Instant::now();
    succeed_once(&p, "all");
    assert!(started.elapsed() >= Duration::from_secs(7), "the pass waited for the writer");
    commit_later.await.expect("committed");
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_same_rows("after the wait", &source.canonical("orders").await, &files.rows, &[]);
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_kafka_a_first_copy_of_scattered_dates_reads_in_cursor_order_even_past_an_ordered_start() {
    let source = TestDb::new("kscatter").await;
    // The first 300 keys on one day (an import of old rows, say), then dates all over the year:
    // the first page alone would pick key order, and a file per date and batch after it (the
    // loader writes each batch's files under the batch's name: see `merging_dates`).
    source
        .exec(
            "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME NULL, KEY (at)); \
             INSERT INTO events SELECT seq, IF(seq <= 300, '2024-06-01' + INTERVAL seq SECOND, \
             IF(seq % 97 = 0, NULL, '2025-01-01' + INTERVAL (seq * 7919 % 365) DAY)) FROM seq_1_to_2000",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("events", "at")], 100, "");
    p.set_sink(&p.parquet_sink());
    with_bus(&p, &bus(&prefix("kscatter"), "loader", "arrow"));
    let mut extract = role(&p, "extract");
    extract.env("HIGHWATER_LOG", "info").arg("--once");
    let log = String::from_utf8_lossy(&succeed(extract).stderr).into_owned();
    assert!(log.contains("the first copy reads in cursor order"), "{log}");
    succeed_once(&p, "load");
    let files = read_parquet(&p.out().join("events"), &["id"], "at");
    assert_same_rows("parquet", &source.canonical("events").await, &files.rows, &[]);
    // A batch goes to the 3 partitions by key, a file per date and partition: in cursor order
    // at most 3 per date (366) and batch boundary (935 files in one run), where key order makes
    // one for about every row (a batch of 100 rows spans about 90 dates).
    assert!(files.files.len() < 1_300, "{} files", files.files.len());
    source.drop_db().await;
}

/// `rows` orders in a database of `server`, and a pipeline from them through the bus (topics
/// and group named after `tag`, Arrow, batches of 200) into Parquet.
async fn orders_to_parquet(server: &harness::OwnServer, tag: &str, rows: u32) -> (TestDb, Pipeline) {
    let source = TestDb::on(&server.url(), &format!("{tag}_src")).await;
    orders(&source, rows, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 200, "");
    p.set_sink(&p.parquet_sink());
    with_bus(&p, &bus(&prefix(tag), "loader", "arrow"));
    (source, p)
}

/// Runs `p`'s extractor as a daemon and kills it (`kill -9`) once it has checkpointed some
/// batches; returns its checkpoints then.
async fn extract_until_killed(p: &Pipeline) -> String {
    let checkpoints = p.dir.path().join("state/test.extract.checkpoints.json");
    let daemon = on_own_port(p);
    let mut extractor = KillOnDrop(role(&daemon, "extract").stderr(Stdio::null()).spawn().expect("starts"));
    until("the extractor's first checkpoints", 60, async || checkpoints.exists()).await;
    extractor.0.kill().expect("kill -9");
    let _ = extractor.0.wait();
    std::fs::read_to_string(&checkpoints).expect("checkpoints")
}

/// The rest of the work, once: `--role extract --once`, then `--role load --once`.
fn extract_and_load_once(p: &Pipeline) {
    for r in ["extract", "load"] {
        succeed_once(p, r);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_loader_makes_what_it_holds_durable_once_the_bus_goes_quiet() {
    // A server of its own: open transactions are the server's, not a database's. On the shared
    // server another test's (a sink's bulk load, a lock it holds) may hold every source's bound
    // below its start, and a `--once` run then rightly leaves the rows above it to the next
    // run (200 of 250 rows once in the deleted-topic test; 1,023 of 40,000 once here, where
    // the dead loader below is the likelier cause).
    let server = harness::OwnServer::start();
    let (source, p) = orders_to_parquet(&server, "quiet", 40_000).await;
    let to_load = on_own_port(&p);
    let mut loader = KillOnDrop(role(&to_load, "load").stderr(Stdio::null()).spawn().expect("starts"));
    extract_until_killed(&p).await;

    // The copy stopped midway: no pass end will tell the loader to flush, and what it holds
    // is far below the sink's commit size. A quiet bus makes it durable all the same. (The
    // wait covers the loader's group join, which under the whole suite took over 30 s once.)
    until("files the loader made durable", 90, async || {
        harness::files_below(&p.out()).iter().any(|f| f.ends_with(".parquet"))
    })
    .await;
    loader.0.kill().expect("kill -9");
    let _ = loader.0.wait();
    // tansu 0.6 expires a dead member only while handling a join after its session ran out
    // (see the loader-kill test): a `--once` loader joining sooner shared the partitions with
    // the dead one, read its own to their end and stopped (220 and 760 of 40,000 rows in two
    // runs today, on this test's own server). A Kafka coordinator expires it by itself.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The offsets it committed cover only files it made durable: killed now, it loses nothing.
    extract_and_load_once(&p);
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_same_rows("after the quiet flush", &source.canonical("orders").await, &files.rows, &[]);
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_independent_consumer_reads_the_documented_json_envelope() {
    let source = TestDb::new("json_src").await;
    orders(&source, 120, false).await;
    let topics = prefix("json");
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, "");
    p.set_sink(&p.parquet_sink());
    with_bus(&p, &bus(&topics, "unused", "json"));
    succeed_once(&p, "extract");

    // confluent-kafka: librdkafka's own Python client, nothing of highwater.
    let script = r#"
import json, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2] + "python", "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
rows, idle = [], 0
while idle < 10:
    m = c.poll(1.0)
    if m is None:
        idle += 1
        continue
    if m.error():
        raise SystemExit(str(m.error()))
    if m.value() is None:
        continue  # a heartbeat
    doc = json.loads(m.value())
    key = json.loads(m.key())
    rows.append({"op": doc["op"], "before": doc["before"], "after": doc["after"], "source": doc["source"],
                 "ts_ms": doc["ts_ms"], "key": key, "partition": m.partition()})
c.close()
print(json.dumps(rows))
"#;
    let topic = format!("{topics}{}.orders", source.name);
    let out = Command::new("python3")
        .args(["-c", script, &brokers(), &topics, &topic])
        .output()
        .expect("python3 runs (deploy/test.sh installs confluent-kafka)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.len(), 120, "one message per row");
    let first = rows.iter().find(|r| r["key"]["id"] == "7").expect("row 7");
    assert_eq!(first["op"], "u");
    assert_eq!(first["before"], serde_json::Value::Null);
    assert_eq!(first["after"]["name"], "order 7 ✓");
    assert_eq!(first["after"]["amount"], "0.07", "decimals as exact strings");
    assert_eq!(first["after"]["update_time"], "2026-01-01T00:00:07.000000");
    assert_eq!(first["source"]["db"], source.name.as_str());
    assert_eq!(first["source"]["table"], "orders");
    assert_eq!(first["source"]["cursor_column"], "update_time");
    assert_eq!(first["source"]["cursor"], "2026-01-01T00:00:07.000000");
    assert!(first["ts_ms"].as_i64().is_some_and(|t| t > 1_700_000_000_000));
    let partitions: std::collections::BTreeSet<i64> = rows.iter().filter_map(|r| r["partition"].as_i64()).collect();
    assert_eq!(partitions.len(), 3, "rows spread over the partitions by key");
    source.drop_db().await;
}

/// A member of a consumer group that reads its partitions and never commits (a loader stuck
/// in its sink, say): confluent-kafka, librdkafka's own Python client. It prints `reading`
/// once it got a message, and leaves the group when its stdin closes.
const MEMBER_THAT_NEVER_COMMITS: &str = r#"
import select, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "max.poll.interval.ms": 6000})
c.subscribe([sys.argv[3]])
told = False
while not select.select([sys.stdin], [], [], 0)[0]:
    m = c.poll(0.2)
    if m is not None and not m.error() and not told:
        print("reading", flush=True)
        told = True
c.close()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_once_loader_fails_while_another_member_of_its_group_holds_rows_and_never_commits() {
    let source = TestDb::new("stuck").await;
    orders(&source, 120, false).await;
    let topics = prefix("stuck");
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 20, "");
    p.set_sink(&p.parquet_sink());
    with_bus(&p, &format!("{}once_stuck_secs = 5\n", bus(&topics, "loaders", "json")));
    succeed_once(&p, "extract");

    let topic = format!("{topics}{}.orders", source.name);
    let mut member = Command::new("python3")
        .args(["-c", MEMBER_THAT_NEVER_COMMITS, &brokers(), &format!("{topics}loaders"), &topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (deploy/test.sh installs confluent-kafka)");
    let mut said = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(member.stdout.take().expect("stdout")), &mut said)
        .expect("the member's output");
    assert_eq!(said.trim(), "reading", "the member joined the group and reads");

    // The loader joins the group: the rows of the member's partitions are read by no one
    // who commits. It must not exit 0.
    let mut load = role(&p, "load");
    load.arg("--once");
    let out = load.output().expect("highwater runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--once: topic {topic} partition"))
            && stderr.contains("messages are not loaded")
            && stderr.contains("s with nothing moving (bus.once_stuck_secs = 5)"),
        "{stderr}"
    );

    // The rows stayed on the bus, and what the failed run wrote duplicates none: a loader of a
    // new group reads every message again, from the start, into the same files. (In Kafka the
    // same group would, once the member left; tansu 0.6 gave a loader joining that group
    // afterwards no partition within 60 s, in each of 10 runs: 4 joining at once, 6 waiting
    // 8 s after the leave.)
    drop(member.stdin.take());
    assert!(member.wait().expect("the member ends").success());
    let text = std::fs::read_to_string(&p.config).expect("config");
    let loaders = format!("group = \"{topics}loaders\"");
    assert!(text.contains(&loaders), "{text}");
    std::fs::write(&p.config, text.replace(&loaders, &format!("group = \"{topics}after\""))).expect("config");
    succeed_once(&p, "load");
    let files = read_parquet(&p.out().join("orders"), &["id"], "update_time");
    assert_same_rows("after the member left", &source.canonical("orders").await, &files.rows, &[]);
    assert_eq!(files.file_rows, 120, "each row once");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_broker_is_a_clear_error_and_nothing_is_checkpointed() {
    let source = TestDb::new("deadkafka").await;
    orders(&source, 10, false).await;
    let closed = harness::free_port();
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, "");
    p.set_sink(&p.parquet_sink());
    let dead = format!("\n[bus]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:{closed}\"\ngroup = \"g\"\n");
    with_bus(&p, &dead);
    for side in ["extract", "load"] {
        let started = Instant::now();
        let mut cmd = role(&p, side);
        let out = cmd.arg("--once").output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{side}: {stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{closed} (bus.brokers)")), "{side}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(45), "{side} gave up in bounded time");
    }
    assert!(!p.dir.path().join("state/test.extract.checkpoints.json").exists(), "nothing checkpointed");
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_topic_stops_the_extractor_instead_of_losing_rows() {
    // A server of its own: on the shared one, other tests' open transactions may hold the
    // re-publish's bound below the rows written for it (see the quiet-bus test).
    let server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "deltopic_src").await;
    let sink = TestDb::on(&server.url(), "deltopic_sink").await;
    orders(&source, 200, false).await;
    let topics = prefix("deltopic");
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, &mysql_sink(&sink, 50));
    with_bus(&p, &bus(&topics, "loader", "json"));
    let extract_once = || {
        let mut cmd = role(&p, "extract");
        cmd.arg("--once");
        cmd.output().expect("runs")
    };
    assert!(extract_once().status.success());

    // The topic goes, with 200 rows no loader has read.
    let topic = format!("{topics}{}.orders", source.name);
    let delete = "import sys\nfrom confluent_kafka.admin import AdminClient\n\
                  admin = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
                  [f.result(10) for f in admin.delete_topics([sys.argv[2]]).values()]";
    let out = Command::new("python3").args(["-c", delete, &brokers(), &topic]).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    source.exec("INSERT INTO orders SELECT 1000 + seq, NOW(6), 'after', 1 FROM seq_1_to_50").await;

    let refused = extract_once();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("it was deleted") && stderr.contains("test.extract.checkpoints.json"), "{stderr}");

    // The fix the message gives: publish again from the start.
    std::fs::remove_file(p.dir.path().join("state/test.extract.checkpoints.json")).expect("remove");
    assert!(extract_once().status.success());
    succeed_once(&p, "load");
    assert_same_rows("after the re-publish", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_loader_waits_out_a_dead_broker_and_still_stops_on_sigterm() {
    let source = TestDb::new("deadwait").await;
    let closed = harness::free_port();
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, "");
    p.set_sink(&p.parquet_sink());
    let port = harness::free_port();
    with_bus(
        &p,
        &format!(
            "\n[bus]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:{closed}\"\ngroup = \"g\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let log = p.dir.path().join("loader.log");
    let mut loader = KillOnDrop(
        role(&p, "load").stderr(std::fs::File::create(&log).expect("log")).spawn().expect("a loader starts"),
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    until("the loader to say it retries", 30, async || text().contains("Kafka unreachable: retrying")).await;
    assert!(loader.0.try_wait().expect("wait").is_none(), "a daemon loader waits, it does not exit: {}", text());

    let kill = Command::new("kill").args(["-TERM", &loader.0.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = loader.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM stops a loader that is waiting for the brokers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit}: {}", text());
    source.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_of_both_roles_into_a_mysql_sink_another_run_writes_is_refused() {
    let source = TestDb::new("kbothlock").await;
    let sink = TestDb::new("kbothlock_sink").await;
    orders(&source, 20, false).await;
    let channel = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let both = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    with_bus(&both, &bus(&prefix("bothlock"), "g", "json"));
    let (mut daemon, port) = channel.spawn_daemon();
    let started = Instant::now();
    while !harness::http_get(port, "/ready").is_some_and(|(s, _)| s.contains("200")) {
        assert!(started.elapsed() < Duration::from_secs(20), "the daemon becomes ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = role(&both, "all").arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("another highwater run is writing database {}", sink.name)), "{err}");
    daemon.0.kill().expect("kill");
    daemon.0.wait().expect("reaped");
    // With the daemon gone, the lock is free.
    succeed_once(&both, "all");
    source.drop_db().await;
    sink.drop_db().await;
}
