//! What every end-to-end test needs: a fresh database of its own on the real server, the
//! `highwater` binary, configs, and canonical views of rows to compare source and sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, Row, Value};

/// The server under test; `HIGHWATER_TEST_MYSQL_URL` overrides the local default.
pub fn server_url() -> String {
    std::env::var("HIGHWATER_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database created for one test, dropped by [`TestDb::drop_db`]. A test that panics leaves
/// it behind; `deploy/test.sh` drops every `hwtest_%` database before the next run.
pub struct TestDb {
    pub name: String,
    server: String,
    pool: Pool,
}

impl TestDb {
    pub async fn new(tag: &str) -> TestDb {
        TestDb::on(&server_url(), tag).await
    }

    /// A database on the server at `server` (`mysql://user@host:port`).
    pub async fn on(server: &str, tag: &str) -> TestDb {
        let name = format!("hwtest_{tag}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let opts = Opts::from_url(server).expect("HIGHWATER_TEST_MYSQL_URL is a mysql:// URL");
        let opts = OptsBuilder::from_opts(opts).setup(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
        let pool = Pool::new(opts);
        let mut conn = pool.get_conn().await.unwrap_or_else(|e| panic!("the tests need MariaDB at {}: {e}", server));
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).await.expect("create database");
        conn.query_drop(format!("USE `{name}`")).await.expect("use");
        drop(conn);
        let opts = OptsBuilder::from_opts(Opts::from_url(server).expect("url"))
            .db_name(Some(name.clone()))
            .setup(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
        pool.clone().disconnect().await.expect("disconnect");
        TestDb { name, server: server.to_owned(), pool: Pool::new(opts) }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// A connection of its own, for a transaction the test holds open.
    pub async fn conn(&self) -> mysql_async::Conn {
        self.pool.get_conn().await.expect("connection")
    }

    pub async fn exec(&self, sql: &str) {
        let mut conn = self.pool.get_conn().await.expect("connection");
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of a query as text (NULL as `None`).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of a query that may fail (a table that does not exist yet).
    pub async fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, mysql_async::Error> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<Row> = conn.query(sql).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        Value::NULL => None,
                        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        other => Some(other.as_sql(true)),
                    })
                    .collect()
            })
            .collect())
    }

    pub async fn count(&self, table: &str) -> u64 {
        let rows = self.rows(&format!("SELECT COUNT(*) FROM {}", quoted(table))).await;
        rows[0][0].as_deref().unwrap_or("0").parse().expect("a count")
    }

    /// Every row of `table` in canonical text (see [`canonical_exprs`]), keyed by its primary key.
    pub async fn canonical(&self, table: &str) -> BTreeMap<String, Vec<Option<String>>> {
        let columns = self.columns(table).await;
        let key = self.key(table).await;
        let exprs: Vec<String> = columns.iter().map(|(n, t)| canonical_expr(n, t)).collect();
        let rows = self.rows(&format!("SELECT {} FROM {}", exprs.join(", "), quoted(table))).await;
        let key_idx: Vec<usize> =
            key.iter().map(|k| columns.iter().position(|(n, _)| n == k).expect("key column")).collect();
        rows.into_iter()
            .map(|r| {
                let k = key_idx.iter().map(|&i| r[i].clone().unwrap_or_default()).collect::<Vec<_>>().join("|");
                (k, r)
            })
            .collect()
    }

    /// `(name, data type)` of each column, in order.
    pub async fn columns(&self, table: &str) -> Vec<(String, String)> {
        self.rows(&format!(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' \
             AND TABLE_NAME = '{}' ORDER BY ORDINAL_POSITION",
            self.name,
            table.replace('\\', "\\\\").replace('\'', "''")
        ))
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect()
    }

    pub async fn key(&self, table: &str) -> Vec<String> {
        self.rows(&format!(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{}' \
             AND TABLE_NAME = '{}' AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            self.name,
            table.replace('\\', "\\\\").replace('\'', "''")
        ))
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
    }

    /// Loads the real Matomo data of `../shared/fixtures/matomo/log_data.sql` with the
    /// `mariadb` client (the dump's own `SET` and `LOCK` statements need it).
    pub fn load_matomo_fixture(&self) {
        let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/matomo/log_data.sql");
        // The server of this database: the shared one or a test's own (`OwnServer`).
        let port = self.server.rsplit(':').next().filter(|p| p.chars().all(|c| c.is_ascii_digit())).unwrap_or("3306");
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("mariadb -uroot -h127.0.0.1 -P{port} {} < '{}'", self.name, dump.display()))
            .status()
            .expect("mariadb client runs");
        assert!(status.success(), "loading {}", dump.display());
    }

    pub async fn drop_db(self) {
        self.exec(&format!("DROP DATABASE `{}`", self.name)).await;
        self.pool.disconnect().await.expect("disconnect");
    }
}

/// A login of a test's own, with a password, allowed on the given databases: its sessions can
/// be told apart in the process list, and its password searched for in everything highwater
/// prints. Dropped by [`TestUser::drop_user`] (or by deploy/test.sh's sweep).
pub struct TestUser {
    pub name: String,
    pub password: String,
}

impl TestUser {
    pub async fn new(admin: &TestDb, databases: &[&TestDb]) -> TestUser {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("hwtest_u{}_{n}", std::process::id());
        let password = format!("Pw-{n}-9f27c1d4e8b3a6");
        admin.exec(&format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")).await;
        for db in databases {
            admin.exec(&format!("GRANT ALL ON `{}`.* TO '{name}'@'%'", db.name)).await;
        }
        TestUser { name, password }
    }

    /// `db`'s URL with this login.
    pub fn url(&self, db: &TestDb) -> String {
        let host = server_url().trim_start_matches("mysql://").rsplit('@').next().unwrap_or_default().to_owned();
        format!("mysql://{}:{}@{host}/{}", self.name, self.password, db.name)
    }

    /// Sessions the server holds for this login, in `database` when given.
    pub async fn sessions(&self, admin: &TestDb, database: Option<&TestDb>) -> u64 {
        let db = database.map_or(String::new(), |d| format!(" AND DB = '{}'", d.name));
        let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{}'{db}", self.name);
        admin.rows(&sql).await[0][0].as_deref().unwrap_or("0").parse().expect("a count")
    }

    pub async fn drop_user(self, admin: &TestDb) {
        admin.exec(&format!("DROP USER '{}'@'%'", self.name)).await;
    }
}

/// A column as text both sides can produce exactly: numbers as digits, dates as days or
/// microseconds since the epoch (zero dates as NULL, as highwater loads them), times as signed
/// microseconds, text and binary as hex. The Parquet reader (`read_parquet.py`) prints the
/// same forms from Arrow values.
pub fn canonical_expr(name: &str, data_type: &str) -> String {
    let c = quoted(name);
    let zero = format!("(MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)");
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year" | "bit" => {
            format!("CAST({c} + 0 AS CHAR)")
        }
        "decimal" | "double" => format!("CAST({c} AS CHAR)"),
        // The double a FLOAT holds, every digit (its own text keeps six).
        "float" => format!("CAST(CAST({c} AS DOUBLE) AS CHAR)"),
        "date" => format!("IF({zero}, NULL, DATEDIFF({c}, '1970-01-01'))"),
        "datetime" | "timestamp" => {
            format!("IF({zero}, NULL, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c}))")
        }
        "time" => format!("CAST(ROUND(TIME_TO_SEC({c}) * 1000000) AS SIGNED)"),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point"
        | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => {
            format!("HEX({c})")
        }
        _ => format!("HEX(CAST({c} AS CHAR CHARACTER SET utf8mb4))"),
    }
}

/// The Parquet files of a table, read back by pyarrow (an independent reader), newest version
/// of each key kept, in the canonical text of [`canonical_expr`].
pub struct ParquetTable {
    /// Arrow type of each column, as pyarrow names it.
    pub types: BTreeMap<String, String>,
    pub rows: BTreeMap<String, Vec<Option<String>>>,
    /// Rows in all files, before keeping the newest version of each key.
    pub file_rows: u64,
    /// Distinct `(key, cursor)` versions in all files: `file_rows` when no version is there twice.
    pub versions: u64,
    pub files: Vec<String>,
}

pub fn read_parquet(dir: &Path, key: &[&str], cursor: &str) -> ParquetTable {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/read_parquet.py");
    let out =
        Command::new("python3").arg(&script).arg(dir).arg(key.join(",")).arg(cursor).output().expect("python3 runs");
    assert!(out.status.success(), "read_parquet.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("read_parquet.py prints JSON");
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    ParquetTable {
        types: v["types"]
            .as_object()
            .expect("types")
            .iter()
            .map(|(k, t)| (k.clone(), text(t).unwrap_or_default()))
            .collect(),
        rows: v["rows"]
            .as_object()
            .expect("rows")
            .iter()
            .map(|(k, r)| (k.clone(), r.as_array().expect("row").iter().map(text).collect()))
            .collect(),
        file_rows: v["file_rows"].as_u64().expect("file_rows"),
        versions: v["versions"].as_u64().expect("versions"),
        files: v["files"].as_array().expect("files").iter().filter_map(text).collect(),
    }
}

/// Float columns differ in their last digits between the server's text and f64: compare those
/// numerically, everything else exactly.
pub fn assert_same_rows(
    what: &str,
    expected: &BTreeMap<String, Vec<Option<String>>>,
    actual: &BTreeMap<String, Vec<Option<String>>>,
    float_columns: &[usize],
) {
    assert_eq!(expected.len(), actual.len(), "{what}: row count");
    for (k, e) in expected {
        let a = actual.get(k).unwrap_or_else(|| panic!("{what}: row {k} is missing"));
        for (i, (x, y)) in e.iter().zip(a).enumerate() {
            let same = match (x, y) {
                (Some(x), Some(y)) if float_columns.contains(&i) => {
                    let (x, y): (f64, f64) = (x.parse().expect("float"), y.parse().expect("float"));
                    (x - y).abs() <= 1e-6 * x.abs().max(1.0)
                }
                _ => x == y,
            };
            assert!(same, "{what}: row {k} column {i}: expected {x:?}, got {y:?}");
        }
    }
}

/// A child process killed when the test ends, passed or panicked, so no daemon outlives it.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Waits for the process to end: whether it succeeded, and what it wrote to its stderr
    /// (piped by the caller).
    pub async fn finished(&mut self) -> (std::process::ExitStatus, String) {
        let mut stderr = self.0.stderr.take().expect("stderr is piped");
        let log = tokio::task::spawn_blocking(move || {
            let mut log = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut log).map(|_| log)
        });
        let log = log.await.expect("reads stderr").expect("stderr is text");
        (self.0.wait().expect("the process ends"), log)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already gone when the test stopped it itself.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Tests share one server: a pass must not end early because another test's long write (a
/// 200,000-row INSERT on a busy machine) holds its bound. Passes wait for such writers up to
/// this long; a test of the hold itself replaces the line (see `set_open_transaction_wait`).
pub const OPEN_TRANSACTION_WAIT: &str = "open_transaction_wait_secs = 30";

/// A config file for one test.
pub struct Pipeline {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Pipeline {
    /// `sink` is the `[sink]` table's body; `tables` are `(name, cursor)`.
    pub fn new(source_url: &str, tables: &[(&str, &str)], batch_rows: usize, sink: &str) -> Pipeline {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables: Vec<String> =
            tables.iter().map(|(n, c)| format!("{{ name = \"{n}\", cursor = \"{c}\" }}")).collect();
        let text = format!(
            "[pipeline]\nname = \"test\"\nstate_dir = \"{}\"\n\n[source]\ntype = \"mysql\"\nurl = \"{source_url}\"\n\
             batch_rows = {batch_rows}\nlag_secs = 0\npoll_interval_secs = 1\n{OPEN_TRANSACTION_WAIT}\n\
             tables = [{}]\n\n[sink]\n{sink}\n",
            dir.path().join("state").display(),
            tables.join(", ")
        );
        let config = dir.path().join("highwater.toml");
        std::fs::write(&config, text).expect("write config");
        Pipeline { dir, config }
    }

    pub fn parquet_sink(&self) -> String {
        format!("type = \"parquet\"\npath = \"{}\"", self.out().display())
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/test.checkpoints.json")
    }

    /// Rewrites the config's `[sink]`.
    pub fn set_sink(&self, sink: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let head = &text[..text.find("[sink]").expect("sink table")];
        std::fs::write(&self.config, format!("{head}[sink]\n{sink}\n")).expect("write config");
    }

    /// Adds a `key = value` line to the config's `[pipeline]`.
    pub fn add_pipeline_setting(&self, line: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replacen("[pipeline]\n", &format!("[pipeline]\n{line}\n"), 1);
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Replaces the source's `open_transaction_wait_secs` (see [`OPEN_TRANSACTION_WAIT`]).
    pub fn set_open_transaction_wait(&self, secs: u64) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let line = text.lines().find(|l| l.starts_with("open_transaction_wait_secs")).expect("the line").to_owned();
        let text = text.replace(&line, &format!("open_transaction_wait_secs = {secs}"));
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Replaces the source's `tables` with these entries (inline TOML tables).
    pub fn set_tables(&self, entries: &[&str]) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let line = text.lines().find(|l| l.starts_with("tables = ")).expect("the line").to_owned();
        let text = text.replace(&line, &format!("tables = [{}]", entries.join(", ")));
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Adds a `key = value` line to the config's `[source]`.
    pub fn add_source_setting(&self, line: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replacen("[source]\n", &format!("[source]\n{line}\n"), 1);
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_highwater"));
        // HIGHWATER_TEST_LOG (a filter, `debug`) shows more of the runs a test makes.
        let log = std::env::var("HIGHWATER_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
        cmd.arg("run").arg("--config").arg(&self.config).env("HIGHWATER_LOG", log);
        cmd
    }

    /// `highwater <args> --config <this config>`: (exit code, stdout).
    pub fn subcommand(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_highwater"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("highwater runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `highwater run` as a daemon serving metrics on a free port: (process, port).
    pub fn spawn_daemon(&self) -> (KillOnDrop, u16) {
        let port = self.serve_metrics_on_a_free_port();
        (KillOnDrop(self.command().spawn().expect("highwater starts")), port)
    }

    /// Sets the config's metrics address to a free port, which it returns: daemons of other
    /// tests on the default port would keep this one's from starting.
    pub fn serve_metrics_on_a_free_port(&self) -> u16 {
        let port = free_port();
        let config = std::fs::read_to_string(&self.config).expect("config");
        assert!(!config.contains("[metrics]"), "the daemon's metrics are set here");
        std::fs::write(&self.config, format!("{config}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).expect("config");
        port
    }

    /// `highwater run --once`, asserting success.
    pub fn run_once(&self) -> Output {
        let out = self.command().arg("--once").output().expect("highwater runs");
        assert!(
            out.status.success(),
            "highwater run --once failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

pub fn mysql_sink(db: &TestDb, batch_rows: usize) -> String {
    format!("type = \"mysql\"\nurl = \"{}\"\nbatch_rows = {batch_rows}", db.url())
}

/// A free port on loopback, for a server the test starts.
/// Waits until the current second is over: a row stamped `NOW()` into a `DATETIME` column
/// (whole seconds) is read only once no later write can take the same value.
pub fn after_this_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    std::thread::sleep(std::time::Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()) + 20_000_000));
}

/// Every file below `dir`, however deep, as paths.
pub fn files_below(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_below(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `GET path` on 127.0.0.1:port: (status line, body).
pub fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// The value of the sample `name{labels}` in a Prometheus text exposition, whatever the
/// order of its labels: every `label="value"` given must be on the line.
pub fn sample(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A MariaDB server of a test's own (its own data directory and port), for tests that stop or
/// break the server: never the shared one. Killed when dropped.
pub struct OwnServer {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
    /// More `mariadbd` options (TLS files, say).
    options: Vec<String>,
    /// The server process's `TZ` (its `SYSTEM` time zone), when set.
    tz: Option<String>,
}

impl OwnServer {
    /// Creates a data directory with `mariadb-install-db` and starts `mariadbd` on a free port.
    pub fn start() -> OwnServer {
        OwnServer::start_with(&[])
    }

    /// [`OwnServer::start`] with more `mariadbd` options.
    ///
    /// The instance keeps its temporary tables in a directory of its own (`--tmpdir`, also for
    /// `mariadb-install-db`'s bootstrap server): a starting `mariadbd` deletes every `#sql*`
    /// file in its tmpdir as left over from an earlier run, and in the shared `/tmp` those
    /// were the live temporary tables of the shared server and of other tests' instances
    /// still bootstrapping (one failed with "Unknown table 'mysql.tmp_user_nopasswd'").
    pub fn start_with(options: &[String]) -> OwnServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmp")).expect("the instance's tmpdir");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", dir.path().join("tmp").display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let mut server = OwnServer { port: free_port(), dir, process: None, options: options.to_vec(), tz: None };
        server.resume();
        server
    }

    /// Restarts the server with its `SYSTEM` time zone (the process's `TZ`) set to `zone`.
    pub fn with_system_zone(mut self, zone: &str) -> OwnServer {
        self.stop("TERM");
        self.tz = Some(zone.to_owned());
        self.resume();
        self
    }

    /// `mysql://root@127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Starts `mariadbd` again on the same data directory and port, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "the server is running");
        let d = self.dir.path();
        let log = std::fs::File::options().create(true).append(true).open(d.join("server.log")).expect("log");
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--user=root", "--innodb-buffer-pool-size=64M", "--skip-log-bin"])
            .args(&self.options)
            .envs(self.tz.iter().map(|tz| ("TZ", tz)))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("mariadbd starts");
        record_server(child.id(), &d.join("data"));
        self.process = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "mariadbd did not listen within 30 s: {}", self.log());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the server the way an operator or a crash would: SIGTERM (a clean shutdown that
    /// ends every session) or SIGKILL.
    pub fn stop(&mut self, signal: &str) {
        let mut child = self.process.take().expect("the server is running");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().expect("kill");
        assert!(status.success());
        // A clean shutdown takes a second or two; one that hangs is ended, not waited on forever.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().expect("mariadbd's status").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        forget_server(child.id());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
            forget_server(child.id());
        }
    }
}

/// Where each running `OwnServer` leaves its PID (the file's name) and data directory (its
/// text), so that `deploy/test.sh` ends the servers of a killed run, and only those.
fn servers_dir() -> PathBuf {
    std::env::temp_dir().join("highwater-test-servers")
}

fn record_server(pid: u32, datadir: &Path) {
    let dir = servers_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(pid.to_string()), datadir.display().to_string());
}

fn forget_server(pid: u32) {
    let _ = std::fs::remove_file(servers_dir().join(pid.to_string()));
}

/// An identifier in backticks, inner backticks doubled.
pub fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
