//! The pool against the real server (`HIGHWATER_TEST_MYSQL_URL`, default the local MariaDB):
//! sessions keep their setup across reuse, the server never sees more than size + max_overflow
//! connections, in-use returns to 0, dead connections are replaced, old ones recycled, and the
//! settings are held to the server's limits.

use std::time::{Duration, Instant};

use highwater_mysql::Pool;
use highwater_pipeline::config::DbUrl;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::pool::{PoolConfig, PoolError};
use mysql_async::prelude::Queryable;

const SETUP: [&str; 2] = ["SET time_zone = '+00:00'", "SET sql_mode = 'STRICT_ALL_TABLES'"];

fn server() -> String {
    std::env::var("HIGHWATER_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// A database of the test's own, so that its connections can be told apart in the process
/// list; dropped by `drop_db` (a panicking test leaves it to deploy/test.sh's sweep).
struct TestDb {
    name: String,
    admin: mysql_async::Pool,
}

impl TestDb {
    async fn new(tag: &str) -> TestDb {
        let name = format!("hwtest_pool_{tag}_{}", std::process::id());
        let admin = mysql_async::Pool::new(mysql_async::Opts::from_url(&server()).expect("a mysql:// URL"));
        let mut conn = admin.get_conn().await.unwrap_or_else(|e| panic!("the tests need MariaDB at {}: {e}", server()));
        conn.query_drop(format!("CREATE DATABASE `{name}`")).await.expect("create database");
        TestDb { name, admin }
    }

    fn url(&self) -> DbUrl {
        DbUrl::new(format!("{}/{}", server(), self.name))
    }

    /// Connections the server holds open in this database.
    async fn server_connections(&self) -> usize {
        let mut conn = self.admin.get_conn().await.expect("admin connection");
        let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{}'", self.name);
        conn.query_first::<usize, _>(sql).await.expect("processlist").unwrap_or_default()
    }

    async fn kill(&self, id: u32) {
        let mut conn = self.admin.get_conn().await.expect("admin connection");
        conn.query_drop(format!("KILL {id}")).await.expect("kill");
    }

    async fn drop_db(self) {
        let mut conn = self.admin.get_conn().await.expect("admin connection");
        conn.query_drop(format!("DROP DATABASE `{}`", self.name)).await.expect("drop database");
        drop(conn);
        self.admin.disconnect().await.expect("disconnect");
    }
}

fn pool_config(size: usize, max_overflow: usize) -> PoolConfig {
    PoolConfig { size, max_overflow, connect_timeout_secs: 5, ..PoolConfig::default() }
}

/// Waits until the pool has taken back every connection (returns are cleaned asynchronously).
async fn settled(pool: &Pool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.usage().in_use > 0 {
        assert!(Instant::now() < deadline, "connections not returned: {:?}", pool.usage());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reused_connection_keeps_its_session_setup() {
    let db = TestDb::new("setup").await;
    let pool = Pool::open(&db.url(), &pool_config(1, 0), "source", &SETUP, None).await.expect("opens");
    let mut conn = pool.get().await.expect("a connection");
    let first: u32 = conn.query_first("SELECT CONNECTION_ID()").await.expect("id").expect("a row");
    conn.query_drop("SET time_zone = '+05:00'").await.expect("set");
    drop(conn);
    settled(&pool).await;

    // The same connection again, reset by the pool on its return.
    let mut conn = pool.get().await.expect("a connection");
    let (id, tz, mode): (u32, String, String) =
        conn.query_first("SELECT CONNECTION_ID(), @@time_zone, @@sql_mode").await.expect("vars").expect("a row");
    assert_eq!(id, first, "size 1: the connection is reused");
    assert_eq!(tz, "+00:00", "the setup ran again after the reset");
    assert_eq!(mode, "STRICT_ALL_TABLES");
    drop(conn);
    pool.disconnect().await.expect("disconnect");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_never_sees_more_than_size_plus_overflow_and_in_use_returns_to_zero() {
    let db = TestDb::new("bound").await;
    let metrics = Metrics::new("test").expect("metrics");
    let pool = Pool::open(&db.url(), &pool_config(2, 1), "source", &SETUP, Some(&metrics)).await.expect("opens");
    let mut most = 0;
    for cycle in 0..5 {
        // Ten callers at once, each holding a connection for 50 ms.
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let pool = pool.clone();
            callers.spawn(async move {
                let mut conn = pool.get().await.expect("a connection within the timeout");
                conn.query_drop("DO SLEEP(0.05)").await.expect("sleep");
            });
        }
        while !callers.is_empty() {
            most = most.max(db.server_connections().await);
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(done) = callers.try_join_next() {
                done.expect("a caller panicked");
            }
        }
        settled(&pool).await;
        assert_eq!(pool.usage().in_use, 0, "cycle {cycle}: every connection came back");
        assert!(db.server_connections().await <= 3, "cycle {cycle}");
    }
    assert_eq!(most, 3, "under load the pool opens its overflow, and no more");
    assert!(pool.usage().idle <= 3, "{:?}", pool.usage());
    let text = metrics.render();
    assert!(
        text.contains("highwater_pool_connections{pool=\"source\",state=\"in_use\",pipeline=\"test\"} 0"),
        "{text}"
    );
    assert!(text.contains("highwater_pool_wait_seconds_count{pool=\"source\",pipeline=\"test\"} 50"), "{text}");
    pool.disconnect().await.expect("disconnect");
    db.drop_db().await;
}

#[tokio::test]
async fn a_connection_the_server_killed_is_replaced_before_use() {
    let db = TestDb::new("ping").await;
    let pool = Pool::open(&db.url(), &pool_config(1, 0), "source", &SETUP, None).await.expect("opens");
    let mut conn = pool.get().await.expect("a connection");
    let first: u32 = conn.query_first("SELECT CONNECTION_ID()").await.expect("id").expect("a row");
    drop(conn);
    settled(&pool).await;
    db.kill(first).await;

    let mut conn = pool.get().await.expect("a live connection in place of the killed one");
    let id: u32 = conn.query_first("SELECT CONNECTION_ID()").await.expect("the connection works").expect("a row");
    assert_ne!(id, first);
    drop(conn);
    pool.disconnect().await.expect("disconnect");
    db.drop_db().await;
}

#[tokio::test]
async fn connections_older_than_recycle_secs_are_replaced() {
    let db = TestDb::new("recycle").await;
    let config = PoolConfig { recycle_secs: Some(1), ..pool_config(1, 0) };
    let pool = Pool::open(&db.url(), &config, "source", &SETUP, None).await.expect("opens");
    let id = async || -> u32 {
        let mut conn = pool.get().await.expect("a connection");
        conn.query_first("SELECT CONNECTION_ID()").await.expect("id").expect("a row")
    };
    let first = id().await;
    settled(&pool).await;
    assert_eq!(id().await, first, "reused while young");
    settled(&pool).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_ne!(id().await, first, "recycled once older than 1 s");
    pool.disconnect().await.expect("disconnect");
    db.drop_db().await;
}

#[tokio::test]
async fn settings_that_do_not_fit_the_server_are_refused_with_their_key() {
    let db = TestDb::new("limits").await;
    let mut conn = db.admin.get_conn().await.expect("admin connection");
    let (wait_timeout, max_connections): (u64, u64) =
        conn.query_first("SELECT @@wait_timeout, @@max_connections").await.expect("vars").expect("a row");
    drop(conn);

    let config = PoolConfig { recycle_secs: Some(wait_timeout), ..pool_config(1, 0) };
    let err = Pool::open(&db.url(), &config, "sink", &SETUP, None).await.err().expect("refused").to_string();
    assert!(err.starts_with("sink.pool.recycle_secs: ") && err.contains("wait_timeout"), "{err}");

    let config = pool_config(max_connections as usize, 0);
    let err = Pool::open(&db.url(), &config, "source", &SETUP, None).await.err().expect("refused").to_string();
    assert!(err.starts_with("source.pool.max_overflow: ") && err.contains("max_connections"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn an_exhausted_pool_says_so_within_the_timeout() {
    let db = TestDb::new("exhausted").await;
    let config = PoolConfig { connect_timeout_secs: 1, ..pool_config(1, 0) };
    let pool = Pool::open(&db.url(), &config, "source", &SETUP, None).await.expect("opens");
    let held = pool.get().await.expect("the only connection");
    let started = Instant::now();
    let Err(err) = pool.get().await else { panic!("a second connection from a pool of one") };
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, PoolError::Exhausted { max: 1, .. }), "{err}");
    assert!(err.to_string().contains("source.pool.max_overflow"), "{err}");
    drop(held);
    pool.disconnect().await.expect("disconnect");
    db.drop_db().await;
}

/// A TCP proxy to the server whose `cut` silently ends the sessions it carries: the sockets
/// stay open, and a session's next bytes close it, as a proxy or firewall that dropped it
/// would. The driver's own socket check sees nothing wrong until a command is sent.
struct CuttingProxy {
    port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CuttingProxy {
    async fn start() -> CuttingProxy {
        use std::sync::atomic::Ordering::SeqCst;
        let upstream = server().rsplit('@').next().unwrap_or_default().trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let current = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (born, current) = (current.load(SeqCst), current.clone());
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 || current.load(SeqCst) != born || server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Dropping both halves closes the session on both sides.
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        CuttingProxy { port, generation }
    }

    fn url(&self, db: &TestDb) -> DbUrl {
        let user = server().trim_start_matches("mysql://").split('@').next().unwrap_or_default().to_owned();
        DbUrl::new(format!("mysql://{user}@127.0.0.1:{}/{}", self.port, db.name))
    }

    fn cut(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn pre_ping_replaces_a_connection_a_proxy_dropped_silently() {
    let db = TestDb::new("preping").await;
    let proxy = CuttingProxy::start().await;
    for pre_ping in [true, false] {
        let config = PoolConfig { pre_ping, ..pool_config(1, 0) };
        let pool = Pool::open(&proxy.url(&db), &config, "source", &SETUP, None).await.expect("opens");
        let mut conn = pool.get().await.expect("a connection");
        conn.query_drop("DO 1").await.expect("works");
        drop(conn);
        // Cleaned and back in the pool, so the cut finds it idle.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.usage().idle < 1 {
            assert!(Instant::now() < deadline, "the connection did not come back: {:?}", pool.usage());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.cut();

        let got = pool.get().await;
        let used = match got {
            Ok(mut conn) => conn.query_drop("DO 1").await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if pre_ping {
            assert_eq!(used, Ok(()), "the dead connection was replaced before it was handed out");
        } else {
            assert!(used.is_err(), "without pre-ping the dead connection is handed out and fails");
        }
        pool.disconnect().await.ok();
    }
    db.drop_db().await;
}
