//! The server-settings matrix: the same guarantees whatever the server's time zone and the
//! cursor column's type. Each test runs on a MariaDB of its own, since it changes global
//! settings (the time zone) or loads the zone tables.

use std::process::Command;
use std::time::Duration;

use highwater_connectors::mysql::clock::CursorZone;
use highwater_pipeline::cursor::DateTime;
use mysql_async::prelude::Queryable;

use crate::harness::{OwnServer, Pipeline, TestDb, after_this_second, assert_same_rows, mysql_sink, read_parquet};

/// A session in the server's global time zone, as an application's would be: it writes
/// `DATETIME` values in that zone's local time.
async fn app_session(db: &TestDb) -> mysql_async::Conn {
    mysql_async::Conn::from_url(db.url()).await.expect("an application session")
}

/// One case: committed rows, then a transaction that stamps its row and commits after a later
/// row was committed by another session. The pass in between must hold below the open one.
/// A cursor column's type, the expression an application stamps it with, and its
/// `cursor_unit` when it counts Unix time.
struct Stamp {
    sql_type: &'static str,
    now: &'static str,
    unit: Option<&'static str>,
}

const fn stamp(sql_type: &'static str) -> Stamp {
    Stamp { sql_type, now: "NOW(6)", unit: None }
}

/// Every kind of cursor a late commit must survive: dates and times at both precisions, and
/// integers counting Unix time in each unit.
const STAMPS: [Stamp; 7] = [
    stamp("DATETIME(6)"),
    stamp("DATETIME"),
    stamp("TIMESTAMP(6)"),
    stamp("TIMESTAMP"),
    Stamp { sql_type: "INT UNSIGNED", now: "UNIX_TIMESTAMP()", unit: Some("seconds") },
    Stamp { sql_type: "BIGINT", now: "FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000)", unit: Some("milliseconds") },
    Stamp { sql_type: "BIGINT", now: "FLOOR(UNIX_TIMESTAMP(NOW(6)) * 1000000)", unit: Some("microseconds") },
];

async fn late_commit_case(server: &OwnServer, zone: &str, stamp: &Stamp) {
    let Stamp { sql_type, now, unit } = stamp;
    let tag = format!(
        "tz{}_{}{}",
        zone.replace([':', '+', '-'], ""),
        sql_type.replace(['(', ')', ' '], ""),
        unit.unwrap_or("")
    );
    let source = TestDb::on(&server.url(), &tag).await;
    let sink = TestDb::on(&server.url(), &format!("{tag}_sink")).await;
    source.exec(&format!("CREATE TABLE t (id INT PRIMARY KEY, c {sql_type} NOT NULL, v INT, KEY (c))")).await;
    let mut app = app_session(&source).await;
    app.query_drop(format!("INSERT INTO t VALUES (1, {now}, 1), (2, {now}, 2), (3, {now}, 3)")).await.expect("rows");
    after_this_second();

    let mut late = app_session(&source).await;
    late.query_drop("BEGIN").await.expect("begin");
    late.query_drop(format!("INSERT INTO t VALUES (100, {now}, 100)")).await.expect("the late row");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.query_drop(format!("INSERT INTO t VALUES (200, {now}, 200)")).await.expect("a later row");
    after_this_second();

    let p = Pipeline::new(&source.url(), &[("t", "c")], 100, &mysql_sink(&sink, 100));
    if let Some(unit) = unit {
        p.set_tables(&[&format!("{{ name = \"t\", cursor = \"c\", cursor_unit = \"{unit}\" }}")]);
    }
    p.set_open_transaction_wait(1);
    p.run_once();
    let case = format!("{zone}, {sql_type} {}", unit.unwrap_or(""));
    let first = sink.rows("SELECT id FROM t ORDER BY id").await;
    assert!(first.len() >= 3, "{case}: the committed rows arrive at once, whatever the zone: {first:?}");
    late.query_drop("COMMIT").await.expect("commit");
    after_this_second();
    p.run_once();
    assert_same_rows(
        &format!("{case}: a transaction that committed late"),
        &source.canonical("t").await,
        &sink.canonical("t").await,
        &[],
    );
    drop((app, late));
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn late_commits_are_kept_whatever_the_server_zone_and_the_cursor_type() {
    let server = OwnServer::start();
    let admin = TestDb::on(&server.url(), "tz_admin").await;
    for zone in ["-05:00", "+08:00", "+00:00"] {
        admin.exec(&format!("SET GLOBAL time_zone = '{zone}'")).await;
        // One at a time: an open transaction holds the bound of every table on its server.
        for stamp in &STAMPS {
            late_commit_case(&server, zone, stamp).await;
        }
    }
    admin.drop_db().await;
}

#[tokio::test]
async fn a_date_cursor_reads_a_day_once_it_is_over_in_the_servers_zone() {
    let server = OwnServer::start_with(&["--default-time-zone=-05:00".to_owned()]);
    let source = TestDb::on(&server.url(), "date_cursor").await;
    let sink = TestDb::on(&server.url(), "date_cursor_sink").await;
    source.exec("CREATE TABLE t (id INT PRIMARY KEY, d DATE NOT NULL, v INT, KEY (d))").await;
    let mut app = app_session(&source).await;
    app.query_drop(
        "INSERT INTO t VALUES (1, CURDATE() - INTERVAL 2 DAY, 1), (2, CURDATE() - INTERVAL 1 DAY, 2), (10, CURDATE(), 10)",
    )
    .await
    .expect("rows");
    let p = Pipeline::new(&source.url(), &[("t", "d")], 100, &mysql_sink(&sink, 100));
    p.run_once();
    let read = sink.rows("SELECT id FROM t ORDER BY id").await;
    assert_eq!(read, [[Some("1".to_owned())], [Some("2".to_owned())]], "today's rows wait for its end");
    // A row of today with a key below the other: read with it once the day is over, not lost.
    app.query_drop("INSERT INTO t VALUES (5, CURDATE(), 5)").await.expect("row");
    p.run_once();
    assert_eq!(sink.count("t").await, 2, "still today");
    let state = format!("{:?}", sink.rows("SELECT * FROM _highwater_checkpoints").await);
    let yesterday = source.rows("SELECT DATE_FORMAT(CURDATE() - INTERVAL 1 DAY, '%Y-%m-%d')").await;
    let yesterday = yesterday[0][0].clone().expect("a date");
    assert!(
        state.contains(&format!("\\\"cursor\\\":\\\"{yesterday} 00:00:00.000000\\\"")),
        "the checkpoint stays at yesterday's last row ({yesterday}): {state}"
    );

    let (code, out) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "check passes on a DATE cursor: {out}");
    assert!(out.contains("date (values in -05:00)"), "check names the zone: {out}");
    assert!(out.contains("read once that day is over in -05:00"), "{out}");
    drop(app);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_zone_the_server_does_not_know_stops_the_run_naming_the_setting() {
    let source = TestDb::new("tz_unknown").await;
    source.exec("CREATE TABLE t (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, KEY (c))").await;
    let p = Pipeline::new(&source.url(), &[("t", "c")], 100, "type = \"parquet\"\npath = \"out\"");
    p.add_source_setting("time_zone = \"Mars/Olympus_Mons\"");
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("\"Mars/Olympus_Mons\" (source.time_zone) is not known to the server"), "{err}");
    source.drop_db().await;
}

/// Loads one zone's tables into a server of the test's own.
fn load_zone(server: &OwnServer, zone: &str) {
    let script = format!(
        "mariadb-tzinfo-to-sql /usr/share/zoneinfo/{zone} {zone} | mariadb -uroot -h127.0.0.1 -P{} mysql",
        server.port
    );
    let status = Command::new("sh").arg("-c").arg(&script).status().expect("sh runs");
    assert!(status.success(), "{script}");
}

fn dt(s: &str) -> DateTime {
    s.parse().expect("datetime")
}

/// The local times of `zone` at every minute from `from` (UTC) for `minutes`.
async fn local_minutes(conn: &mut mysql_async::Conn, zone: &str, from: &str, minutes: u32) -> Vec<DateTime> {
    let sql = format!(
        "SELECT DATE_FORMAT(CONVERT_TZ(TIMESTAMP'{from}' + INTERVAL seq MINUTE, '+00:00', '{zone}'), '%Y-%m-%d %H:%i:%s') \
         FROM seq_0_to_{minutes}"
    );
    let texts: Vec<String> = conn.query(sql).await.expect("local times");
    texts.iter().map(|t| dt(t)).collect()
}

#[tokio::test]
async fn a_named_zone_bound_holds_below_the_hour_that_a_clock_change_repeats() {
    let server = OwnServer::start();
    load_zone(&server, "America/New_York");
    let mut conn = mysql_async::Conn::from_url(server.url()).await.expect("connection");
    conn.query_drop("SET time_zone = '+00:00'").await.expect("utc");
    // The sequence engine's tables need a database.
    conn.query_drop("USE mysql").await.expect("a database");
    let zone = CursorZone::resolve(&mut conn, Some("America/New_York")).await.expect("a known zone");
    assert_eq!(zone, CursorZone::Local("America/New_York".into()));

    // New York's clock went back from 02:00 EDT to 01:00 EST at 06:00 UTC on 2026-11-01, and
    // forward from 02:00 EST to 03:00 EDT at 07:00 UTC on 2026-03-08. Every 10 minutes over
    // 6 hours around each: the bound is no later than any local time still to come (4 hours
    // looked at by the minute), and at most the clock change below the local clock.
    for start in ["2026-11-01 02:00:00", "2026-03-08 04:00:00"] {
        let ahead = local_minutes(&mut conn, "America/New_York", start, 6 * 60 + 240).await;
        for step in 0..=36usize {
            let at = step * 10;
            let utc = DateTime::from_unix_micros(dt(start).unix_micros().expect("real") + at as i64 * 60_000_000);
            let (floor, _) = zone.floors(&mut conn, utc, utc).await.expect("a bound");
            let lowest_to_come = ahead[at..at + 240].iter().min().expect("minutes");
            let now_local = ahead[at];
            assert!(floor <= *lowest_to_come, "{utc} UTC: bound {floor} above {lowest_to_come}, a local time to come");
            let hour_below = DateTime::from_unix_micros(now_local.unix_micros().expect("real") - 3_600_000_000);
            assert!(floor >= hour_below, "{utc} UTC: bound {floor} more than an hour below the clock {now_local}");
        }
    }
    // A zone that is UTC all year needs no conversion.
    assert_eq!(CursorZone::resolve(&mut conn, Some("+00:00")).await.expect("known"), CursorZone::Utc);
    drop(conn);
}

#[tokio::test]
async fn every_command_works_under_a_servers_odd_sql_mode() {
    let mode = "ANSI_QUOTES,PIPES_AS_CONCAT,NO_BACKSLASH_ESCAPES,ONLY_FULL_GROUP_BY,STRICT_ALL_TABLES,\
                NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_UNSIGNED_SUBTRACTION";
    let server = OwnServer::start_with(&[format!("--sql-mode={mode}")]);
    let source = TestDb::on(&server.url(), "sqlmode").await;
    let sink = TestDb::on(&server.url(), "sqlmode_sink").await;
    source
        .exec(
            "CREATE TABLE t (id BIGINT UNSIGNED PRIMARY KEY, c DATETIME(6) NULL, note VARCHAR(32), KEY (c)); \
             INSERT INTO t SELECT seq, IF(seq % 7 = 0, NULL, '2026-01-01' + INTERVAL seq SECOND), CONCAT('n\\\\', seq) \
             FROM seq_1_to_500",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("t", "c")], 60, &mysql_sink(&sink, 50));
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "{checked}");
    p.run_once();
    source.exec("UPDATE t SET c = '2026-02-01', note = 'changed' WHERE id % 5 = 0").await;
    source.exec("INSERT INTO t VALUES (1000, NULL, 'late null'), (1001, '2026-02-02', 'new')").await;
    source.exec("DELETE FROM t WHERE id = 3").await;
    p.run_once();
    let (code, reconciled) = p.subcommand(&["reconcile"]);
    assert_eq!(code, Some(0), "{reconciled}");
    assert!(reconciled.contains("1 rows deleted"), "{reconciled}");
    assert_same_rows(mode, &source.canonical("t").await, &sink.canonical("t").await, &[]);
    let to_parquet = Pipeline::new(&source.url(), &[("t", "c")], 60, "type = \"parquet\"");
    to_parquet.set_sink(&to_parquet.parquet_sink());
    to_parquet.run_once();
    let files = crate::harness::read_parquet(&to_parquet.out().join("t"), &["id"], "c");
    assert_same_rows(&format!("{mode}, parquet"), &source.canonical("t").await, &files.rows, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_server_on_system_time_in_shanghai_replicates_at_once_and_keeps_late_commits() {
    // The default of much of Asia: time_zone = SYSTEM, the machine's zone +08:00.
    let server = OwnServer::start().with_system_zone("Asia/Shanghai");
    let admin = TestDb::on(&server.url(), "tz_system").await;
    let zone = admin.rows("SELECT @@global.time_zone, @@system_time_zone").await;
    assert_eq!(zone[0][0].as_deref(), Some("SYSTEM"), "{zone:?}");
    late_commit_case(&server, "SYSTEM", &stamp("DATETIME(6)")).await;
    late_commit_case(&server, "SYSTEM", &stamp("DATETIME")).await;
    admin.drop_db().await;
}

#[tokio::test]
async fn an_integer_epoch_cursor_is_read_by_its_unit_and_refused_without_it() {
    let source = TestDb::new("epoch").await;
    source.exec("CREATE TABLE t (id INT PRIMARY KEY, c INT UNSIGNED NULL, v INT, KEY (c))").await;
    source.exec("CREATE TABLE ok (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, KEY (c))").await;
    source.exec("INSERT INTO t SELECT seq, 1546300800 + seq * 86400, seq FROM seq_1_to_250").await;
    source.exec("INSERT INTO t VALUES (0, NULL, 0), (-1, 0, -1); INSERT INTO ok VALUES (1, '2026-01-01')").await;
    let p = Pipeline::new(&source.url(), &[("t", "c"), ("ok", "c")], 100, "type = \"parquet\"");
    p.set_sink(&p.parquet_sink());

    // Without its unit, an integer cursor is refused, naming the table, column, key and remedy.
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let why = format!("table {}.t cursor column c is int(10) unsigned", source.name);
    assert!(err.contains(&why) && err.contains("source.tables[0].cursor") && err.contains("cursor_unit"), "{err}");
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{checked}");
    assert!(checked.contains(&why), "{checked}");
    // A unit on a date cursor is a mistake too.
    let seconds = "{ name = \"t\", cursor = \"c\", cursor_unit = \"seconds\" }";
    p.set_tables(&[seconds, "{ name = \"ok\", cursor = \"c\", cursor_unit = \"seconds\" }"]);
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{checked}");
    assert!(checked.contains("source.tables[1].cursor_unit") && checked.contains("datetime(6)"), "{checked}");

    p.set_tables(&[seconds, "{ name = \"ok\", cursor = \"c\" }"]);
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "{checked}");
    assert!(checked.contains("counts Unix time in seconds") && checked.contains("(values in UTC)"), "{checked}");
    assert!(checked.contains("its newest value is 2019-09-08 00:00:00.000000 UTC"), "{checked}");
    p.run_once();
    source.exec("UPDATE t SET v = v + 1000, c = UNIX_TIMESTAMP() - 5 WHERE id % 7 = 0").await;
    source.exec("INSERT INTO t VALUES (1000, UNIX_TIMESTAMP() - 5, 1000), (1001, NULL, 1001)").await;
    after_this_second();
    p.run_once();
    let expected = source.canonical("t").await;
    assert_eq!(expected.len(), 254);
    let files = read_parquet(&p.out().join("t"), &["id"], "c");
    assert_same_rows("parquet", &expected, &files.rows, &[]);
    assert_eq!(files.file_rows, 254 + 36, "every version once: {} rows in {:?}", files.file_rows, files.files);

    // Milliseconds read as seconds land tens of thousands of years away: the table stops,
    // naming the column and the setting, and the other table goes on.
    source.exec("CREATE TABLE ms (id INT PRIMARY KEY, c BIGINT NOT NULL, KEY (c))").await;
    source.exec("INSERT INTO ms VALUES (1, FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) - 5000)").await;
    source.exec("INSERT INTO ok VALUES (2, NOW(6) - INTERVAL 5 SECOND)").await;
    p.set_tables(&[
        seconds,
        "{ name = \"ok\", cursor = \"c\" }",
        "{ name = \"ms\", cursor = \"c\", cursor_unit = \"seconds\" }",
    ]);
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{checked}");
    assert!(checked.contains("is outside 0001-01-01..9999-12-31: is its cursor_unit right?"), "{checked}");
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("table {}.ms column c", source.name)) && err.contains("cursor_unit"), "{err}");
    assert_eq!(read_parquet(&p.out().join("ok"), &["id"], "c").rows.len(), 2, "the other table went on");
    source.drop_db().await;
}
