//! Config bounds: every numeric key at 0, at its maximum and beyond, every path key empty,
//! values with quotes, backslashes and newlines through `${ENV}`, passwords that URLs do not
//! encode, and a reader that closes stdout. Exit 2 naming the key, never a panic.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::harness::{Pipeline, TestDb, mysql_sink};
use crate::orders;

/// A pipeline of table `t` in `database` into Parquet, for commands that read only the config
/// and the state.
fn offline(database: &str) -> Pipeline {
    Pipeline::new(
        &format!("mysql://root@127.0.0.1:3306/{database}"),
        &[("t", "c")],
        100,
        "type = \"parquet\"\npath = \"out\"",
    )
}

/// `highwater status` on the config as `edit` changes it: (exit code, stderr).
fn status_of(p: &Pipeline, edit: impl Fn(&str) -> String) -> (Option<i32>, String) {
    let patched = p.dir.path().join("patched.toml");
    std::fs::write(&patched, edit(&std::fs::read_to_string(&p.config).expect("config"))).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_highwater"))
        .args(["status", "--config"])
        .arg(&patched)
        .output()
        .expect("highwater runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// [`status_of`] with `line` (`key = value`) in place of the key's line in `[section]`, or
/// added at its top.
fn status_with(p: &Pipeline, section: &str, line: &str) -> (Option<i32>, String) {
    let key = line.split(" = ").next().unwrap_or_default();
    status_of(p, |text| match text.lines().find(|l| !key.is_empty() && l.starts_with(&format!("{key} = "))) {
        Some(old) => text.replacen(old, line, 1),
        None => text.replacen(&format!("[{section}]\n"), &format!("[{section}]\n{line}\n"), 1),
    })
}

#[test]
fn every_numeric_key_at_zero_its_maximum_and_beyond_is_taken_or_named() {
    let p = offline("hwtest_bounds");
    // (section, line with the value as {v}, key, lowest, highest)
    let keys: [(&str, &str, &str, u64, u64); 12] = [
        ("pipeline", "bus_capacity = {v}", "pipeline.bus_capacity", 1, 100_000),
        ("pipeline", "retry_for_secs = {v}", "pipeline.retry_for_secs", 0, 604_800),
        ("source", "batch_rows = {v}", "source.batch_rows", 1, 1_000_000),
        ("source", "lag_secs = {v}", "source.lag_secs", 0, 86_400),
        ("source", "poll_interval_secs = {v}", "source.poll_interval_secs", 1, 86_400),
        ("source", "open_transaction_wait_secs = {v}", "source.open_transaction_wait_secs", 0, 3_600),
        ("source", "pool = { size = {v} }", "source.pool.size", 1, 1_000),
        ("source", "pool = { max_overflow = {v} }", "source.pool.max_overflow", 0, 1_000),
        ("source", "pool = { connect_timeout_secs = {v} }", "source.pool.connect_timeout_secs", 1, 3_600),
        ("source", "pool = { recycle_secs = {v} }", "source.pool.recycle_secs", 1, 31_536_000),
        ("sink", "commit_mb = {v}", "sink.commit_mb", 1, 4_096),
        ("table", "reread_secs = {v}", "source.tables[0].reread_secs", 0, 2_592_000),
    ];
    for (section, line, name, lo, hi) in keys {
        let mut values = vec![(lo, true), (hi, true), (hi + 1, false), (i64::MAX as u64, false)];
        if lo > 0 {
            values.push((lo - 1, false));
        }
        for (value, valid) in values {
            let line = line.replace("{v}", &value.to_string());
            let (code, err) = if section == "table" {
                status_of(&p, |text| text.replace("cursor = \"c\" }", &format!("cursor = \"c\", {line} }}")))
            } else {
                status_with(&p, section, &line)
            };
            assert_ne!(code, Some(101), "{name} = {value} panicked: {err}");
            if valid {
                assert_eq!(code, Some(0), "{name} = {value} is valid: {err}");
            } else {
                assert_eq!(code, Some(2), "{name} = {value} is refused: {err}");
                assert!(err.contains(name), "{name} = {value}: the error names the key: {err}");
            }
        }
    }
    // Beyond what TOML holds.
    let (code, err) = status_with(&p, "source", "lag_secs = 9223372036854775808");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("lag_secs"), "{err}");
}

#[test]
fn empty_paths_and_a_sink_that_is_the_source_are_refused() {
    let p = Pipeline::new("mysql://root@127.0.0.1:3306/shop", &[("t", "c")], 100, "type = \"parquet\"\npath = \"\"");
    let (code, err) = status_with(&p, "pipeline", "state_dir = \"\"");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pipeline.state_dir: must not be empty") && err.contains("sink.path: must not be empty"),
        "{err}"
    );

    let p = Pipeline::new(
        "mysql://root@localhost/shop",
        &[("t", "c")],
        100,
        "type = \"mysql\"\nurl = \"mysql://u:p@127.0.0.1:3306/shop\"",
    );
    let (code, err) = status_with(&p, "pipeline", "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sink.url: is the source's own database"), "{err}");
}

#[tokio::test]
async fn env_values_with_quotes_backslashes_and_newlines_arrive_as_they_are() {
    let source = TestDb::new("envpw").await;
    let sink = TestDb::new("envpw_sink").await;
    orders(&source, 10, false).await;
    // A password TOML would read otherwise if pasted into the file: a quote, a backslash and
    // a `\t` that is two characters.
    let user = format!("hwtest_envpw_{}", std::process::id());
    let password = r#"q"b\tz"#;
    source.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'q\"b\\\\tz'")).await;
    source.exec(&format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", source.name)).await;
    let url = format!("mysql://{user}:${{HW_TEST_PW}}@127.0.0.1:3306/{}", source.name);
    let p = Pipeline::new(&url, &[("orders", "update_time")], 100, &mysql_sink(&sink, 100));
    let out = p.command().arg("--once").env("HW_TEST_PW", password).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the login works with the password as it is: {err}");
    assert_eq!(sink.count("orders").await, 10);

    // A newline cannot add a key; a value that cannot be written where it stands is named.
    let out = p.command().arg("--once").env("HW_TEST_PW", "x\"\nlag_secs = 5\n").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the file parses, the login fails: {err}");
    assert!(!err.contains("lag_secs = 5"), "{err}");
    let text = std::fs::read_to_string(&p.config).expect("config").replace("url = \"mysql://", "url = 'mysql://");
    let text = text.replacen(&format!("{}\"", source.name), &format!("{}'", source.name), 1);
    std::fs::write(&p.config, text).expect("config");
    let out = p.command().arg("--once").env("HW_TEST_PW", "it's").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the value of HW_TEST_PW (used as ${HW_TEST_PW}) holds a quote"), "{err}");
    source.exec(&format!("DROP USER '{user}'@'%'")).await;
    source.drop_db().await;
    sink.drop_db().await;
}

#[tokio::test]
async fn a_password_with_an_unencoded_slash_is_never_printed() {
    let source = TestDb::new("slashpw").await;
    let secret = "se/cr@et:pa/ss";
    let url = format!("mysql://root:{secret}@127.0.0.1:3306/{}", source.name);
    let p = Pipeline::new(&url, &[("t", "c")], 100, "type = \"parquet\"\npath = \"out\"");
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("source.url: holds '/'"), "{err}");
    for part in ["se/cr", "et:pa", "pa/ss", "cr@et"] {
        assert!(!err.contains(part), "{part} of the password is printed: {err}");
    }
    for args in [&["status"][..], &["status", "--json"]] {
        let (_, stdout) = p.subcommand(args);
        assert!(!stdout.contains("pa/ss") && !stdout.contains("se/cr"), "{stdout}");
    }
    // A port that is not one is the config's fault: exit 2, naming the key.
    let p = Pipeline::new("mysql://root@127.0.0.1:33o6/db", &[("t", "c")], 100, "type = \"parquet\"\npath = \"out\"");
    let out = p.command().arg("--once").output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("source.url: has port \"33o6\""), "{err}");
    for entry in std::fs::read_dir(p.dir.path().join("state")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains("pa/ss") && !text.contains("se/cr"), "{}: {text}", entry.path().display());
    }
    source.drop_db().await;
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_output_not_with_a_panic() {
    let p = offline("hwtest_pipe");
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_highwater"))
            .args(["status", "--config"])
            .arg(&p.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        // Read one byte, then close the pipe, as `| head -c1` does.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut one = [0u8; 1];
        let _ = stdout.read(&mut one);
        drop(stdout);
        let out = child.wait_with_output().expect("ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(101), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
