//! Values at their limits and schema facts a table can hold, compared on the server with
//! null-safe equality, value by value.

use crate::harness::{Pipeline, TestDb, after_this_second, assert_same_rows, mysql_sink, quoted};

/// The keys of the rows of `table` whose values differ between the two databases (on one
/// server), column by column with `<=>`: exact for floats, bits and binary, unlike text.
async fn differing_rows(source: &TestDb, sink: &TestDb, table: &str) -> Vec<String> {
    let columns = source.columns(table).await;
    let same: Vec<String> = columns.iter().map(|(c, _)| format!("s.{0} <=> k.{0}", quoted(c))).collect();
    let key = source.key(table).await;
    let join: Vec<String> = key.iter().map(|c| format!("s.{0} = k.{0}", quoted(c))).collect();
    let sql = format!(
        "SELECT CONCAT_WS('|', {}) FROM `{}`.{t} s LEFT JOIN `{}`.{t} k ON {} WHERE NOT ({})",
        key.iter().map(|c| format!("s.{}", quoted(c))).collect::<Vec<_>>().join(", "),
        source.name,
        sink.name,
        join.join(" AND "),
        same.join(" AND "),
        t = quoted(table),
    );
    source.rows(&sql).await.into_iter().map(|r| r[0].clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn floats_and_bits_at_their_limits_load_by_the_bulk_path_and_by_upserts() {
    let source = TestDb::new("limits").await;
    let sink = TestDb::new("limits_sink").await;
    source
        .exec(
            "CREATE TABLE t (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, f FLOAT, d DOUBLE, b1 BIT(1), b8 BIT(8), \
             b64 BIT(64), KEY (c))",
        )
        .await;
    source
        .exec(
            "INSERT INTO t VALUES \
             (1, '2026-01-01', 3.4028234663852886e38, 1.7976931348623157e308, 1, 255, 18446744073709551615), \
             (2, '2026-01-01', -3.4028234663852886e38, -1.7976931348623157e308, 0, 0, 0), \
             (3, '2026-01-01', 1.1754943508222875e-38, 2.2250738585072014e-308, 1, 1, 1), \
             (4, '2026-01-01', 1.401298464324817e-45, 4.9406564584124654e-324, 0, 128, 9223372036854775808), \
             (5, '2026-01-01', -0.0, -0.0, NULL, NULL, NULL), \
             (6, '2026-01-01', 0.1, 0.1, 1, 85, 12297829382473034410)",
        )
        .await;
    let p = Pipeline::new(&source.url(), &[("t", "c")], 100, &mysql_sink(&sink, 100));
    let out = p.command().arg("--once").env("HIGHWATER_LOG", "info").output().expect("runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("go by upserts"), "every value loads by the bulk path: {log}");
    assert_eq!(sink.count("t").await, 6);
    assert_eq!(differing_rows(&source, &sink, "t").await, Vec::<String>::new(), "first copy");

    // The same values again, by upserts.
    source.exec("UPDATE t SET c = '2026-02-01', id = id").await;
    p.run_once();
    assert_eq!(differing_rows(&source, &sink, "t").await, Vec::<String>::new(), "upserts");
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_soft_delete_column_that_is_not_null_is_refused_before_anything_is_written() {
    let source = TestDb::new("softnn").await;
    let sink = TestDb::new("softnn_sink").await;
    crate::orders(&source, 50, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let text = std::fs::read_to_string(&p.config).expect("config");
    let table = "{ name = \"orders\", cursor = \"update_time\", soft_delete = \"update_time\" }";
    std::fs::write(&p.config, text.replace("{ name = \"orders\", cursor = \"update_time\" }", table)).expect("config");
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("update_time (source.tables[0].soft_delete) is NOT NULL"), "{err}");
    assert!(sink.try_rows("SELECT 1 FROM orders").await.is_err(), "no table was created in the sink");
    let (code, check) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{check}");
    assert!(check.contains("is NOT NULL"), "{check}");
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_column_added_with_a_default_holds_it_in_the_rows_copied_before() {
    let source = TestDb::new("adddef").await;
    let sink = TestDb::new("adddef_sink").await;
    crate::orders(&source, 20, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    p.run_once();
    source
        .exec(
            "ALTER TABLE orders ADD COLUMN tag VARCHAR(8) NOT NULL DEFAULT 'x''y', ADD COLUMN n INT DEFAULT 7, \
             ADD COLUMN f DOUBLE NOT NULL DEFAULT -1.5e3, ADD COLUMN note TEXT, ADD COLUMN i2 INT NOT NULL, \
             ADD COLUMN s2 VARCHAR(5) NOT NULL, ADD COLUMN e2 ENUM('it''s', 'b') NOT NULL, ADD COLUMN t2 TIME NOT NULL",
        )
        .await;
    source.exec("INSERT INTO orders (id, update_time, name, tag, n, i2, s2, e2, t2) VALUES (100, NOW(6) - INTERVAL 1 DAY, 'new', 'z', NULL, 5, 'v', 'b', '01:02:03')").await;
    p.run_once();
    assert_same_rows("mysql", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);

    // An expression default cannot be repeated by the sink: it says so, and touching the
    // rows' cursor, as it advises, sends the values.
    source.exec("ALTER TABLE orders ADD COLUMN u VARCHAR(36) NULL DEFAULT (UUID())").await;
    let out = p.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new columns with an expression default") && err.contains("[\"u\"]"), "{err}");
    let nulls = sink.rows("SELECT COUNT(*) FROM orders WHERE u IS NULL").await;
    assert_eq!(nulls[0][0].as_deref(), Some("21"), "the rows copied before hold NULL");
    source.exec("UPDATE orders SET update_time = NOW(6) - INTERVAL 1 SECOND").await;
    after_this_second();
    p.run_once();
    assert_same_rows("mysql, touched", &source.canonical("orders").await, &sink.canonical("orders").await, &[]);
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn tables_named_dot_and_dot_dot_stay_inside_the_parquet_directory() {
    let source = TestDb::new("dots").await;
    for name in ["..", ".", "a/b"] {
        source
            .exec(&format!("CREATE TABLE {} (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, KEY (c))", quoted(name)))
            .await;
        source.exec(&format!("INSERT INTO {} VALUES (1, '2026-01-01'), (2, '2026-01-02')", quoted(name))).await;
    }
    let p = Pipeline::new(&source.url(), &[("..", "c"), (".", "c"), ("a/b", "c")], 100, "type = \"parquet\"");
    p.set_sink(&p.parquet_sink());
    p.run_once();
    let out = p.out();
    let mut dirs: Vec<String> =
        std::fs::read_dir(&out).expect("out").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    dirs.sort();
    assert_eq!(dirs, ["%2E", "%2E%2E", ".highwater.lock", "a%2Fb"], "one directory per table inside {}", out.display());
    for dir in dirs.iter().filter(|d| !d.ends_with(".lock")) {
        let files = crate::harness::files_below(&out.join(dir));
        assert!(files.iter().any(|f| f.ends_with(".parquet")), "{dir}: {files:?}");
    }
    // Nothing beside the output directory or in the config's.
    let beside: Vec<String> = std::fs::read_dir(p.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(beside.iter().all(|n| ["out", "state", "highwater.toml"].contains(&n.as_str())), "{beside:?}");
    source.drop_db().await;
}

#[tokio::test]
async fn upserts_fit_the_sinks_max_allowed_packet_and_a_row_above_it_stops_at_once_naming_it() {
    let server = crate::harness::OwnServer::start_with(&["--max-allowed-packet=1M".to_owned()]);
    let source = TestDb::on(&server.url(), "packet").await;
    let sink = TestDb::on(&server.url(), "packet_sink").await;
    source.exec("CREATE TABLE t (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, b LONGBLOB, KEY (c))").await;
    // Thirty rows of 100 KB (600 KB as statement text each): three MB in all.
    source.exec("INSERT INTO t SELECT seq, '2026-01-01', RANDOM_BYTES(1024) FROM seq_1_to_30").await;
    source.exec("UPDATE t SET b = REPEAT(b, 100)").await;
    let p = Pipeline::new(&source.url(), &[("t", "c")], 100, &mysql_sink(&sink, 1000));
    p.run_once();
    source.exec("UPDATE t SET c = '2026-01-02'").await;
    let started = std::time::Instant::now();
    p.run_once();
    assert_eq!(differing_rows(&source, &sink, "t").await, Vec::<String>::new(), "updates by upserts, split to fit");

    // One row whose statement cannot fit (600 KB, 1.2 MB as hex): it stops at once, naming the setting.
    source.exec("UPDATE t SET b = REPEAT(b, 6), c = '2026-01-03' WHERE id = 7").await;
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the row with id = 7 is") && err.contains("max_allowed_packet"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "not retried as if it could pass");
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn myisam_and_aria_tables_go_from_indexes_to_a_passing_check_and_replicate() {
    let source = TestDb::new("engines").await;
    let sink = TestDb::new("engines_sink").await;
    for (table, engine, index) in
        [("m", "MyISAM", ""), ("a", "Aria", ""), ("mc", "MyISAM", ", KEY (c)"), ("mk", "MyISAM", ", KEY (c, id)")]
    {
        source
            .exec(&format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, c DATETIME(6) NOT NULL, v INT{index}) ENGINE={engine}"
            ))
            .await;
        source
            .exec(&format!("INSERT INTO {table} SELECT seq, '2026-01-01' + INTERVAL seq MINUTE, seq FROM seq_1_to_300"))
            .await;
    }
    let tables = [("m", "c"), ("a", "c"), ("mc", "c"), ("mk", "c"), ("nope", "c")];
    let p = Pipeline::new(&source.url(), &tables, 100, &mysql_sink(&sink, 100));
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(1), "{checked}");
    let line =
        |table: &str| checked.lines().find(|l| l.contains(&format!(".{table}  "))).unwrap_or_default().to_owned();
    for table in ["m", "a", "mc"] {
        assert!(line(table).starts_with("FAIL"), "{table}: {checked}");
    }
    assert!(line("mk").starts_with("OK"), "a (cursor, key) index serves MyISAM: {checked}");
    assert!(
        checked.contains("engine MyISAM has no transactions") && checked.contains("engine Aria has no transactions")
    );

    let (code, printed) = p.subcommand(&["indexes"]);
    assert_eq!(code, Some(1), "the missing table is named: {printed}");
    assert!(printed.contains("-- ") && printed.contains(".nope: no index to suggest: table"), "{printed}");
    for table in ["m", "a", "mc"] {
        let create = format!("CREATE INDEX `idx_c_key` ON `{}`.`{table}` (`c`, `id`);", source.name);
        assert!(printed.contains(&create), "{create} in {printed}");
    }
    assert!(!printed.contains("ALGORITHM"), "engines other than InnoDB build indexes offline: {printed}");

    let (code, applied) = p.subcommand(&["indexes", "--apply"]);
    assert_eq!(code, Some(1), "{applied}");
    assert_eq!(applied.matches("-- applied in").count(), 3, "{applied}");
    let text = std::fs::read_to_string(&p.config).expect("config").replace(", { name = \"nope\", cursor = \"c\" }", "");
    std::fs::write(&p.config, text).expect("config");
    let (code, checked) = p.subcommand(&["check"]);
    assert_eq!(code, Some(0), "{checked}");

    p.run_once();
    for table in ["m", "a", "mc", "mk"] {
        assert_same_rows(table, &source.canonical(table).await, &sink.canonical(table).await, &[]);
    }
    source.drop_db().await;
    sink.drop_db().await;
}
