//! The pipeline's TOML file: one source, one sink and a bus, each chosen by its `type` from the
//! components this binary is built with, then validated so that every problem is named by file,
//! line and key before anything connects. Each component's settings are its own; this file only
//! picks and checks them together.
//!
//! Runtime switches (`--once`) are CLI flags, not config.

use std::path::{Path, PathBuf};

use highwater_connectors::mysql::config::{MatomoSourceConfig, MysqlSourceConfig};
use highwater_connectors::sqlite::config::SqliteSourceConfig;
use highwater_kafka::config::KafkaBusConfig;
use highwater_pipeline::config::{
    ConfigError, MAX_BUS_CAPACITY, MetricsConfig, PipelineConfig, WEEK_SECS, deserialize, interpolate, same_database,
    unknown_kind, within,
};
use highwater_sinks::mysql::config::MysqlSinkConfig;
use highwater_sinks::parquet::config::ParquetSinkConfig;
use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

/// The whole file.
#[derive(Debug)]
pub struct Config {
    pub pipeline: PipelineConfig,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    /// `None`: serve metrics on [`DEFAULT_METRICS_LISTEN`] for daemons, not for `--once`.
    pub metrics: Option<MetricsConfig>,
    /// The in-process channel unless the file has a `[bus]` of another type.
    pub bus: BusConfig,
}

/// The `[source]` table, by its `type`.
#[derive(Debug)]
pub enum SourceConfig {
    Mysql(MysqlSourceConfig),
    Sqlite(SqliteSourceConfig),
}

impl SourceConfig {
    /// Rows per read (`source.batch_rows`).
    pub fn batch_rows(&self) -> usize {
        match self {
            SourceConfig::Mysql(s) => s.batch_rows,
            SourceConfig::Sqlite(s) => s.batch_rows,
        }
    }

    /// Whether the source is a store being moved into the sink (a SQLite file): its first copy
    /// goes into an empty target unless the sink's config accepts another.
    pub fn is_a_move(&self) -> bool {
        matches!(self, SourceConfig::Sqlite(_))
    }

    /// Between a daemon's passes (`source.poll_interval_secs`).
    pub fn poll_interval_secs(&self) -> u64 {
        match self {
            SourceConfig::Mysql(s) => s.poll_interval_secs,
            SourceConfig::Sqlite(s) => s.poll_interval_secs,
        }
    }
}

/// The `[sink]` table, by its `type`.
#[derive(Debug)]
pub enum SinkConfig {
    Parquet(ParquetSinkConfig),
    Mysql(MysqlSinkConfig),
}

/// The `[bus]` table, by its `type`: how batches travel from extraction to loading. Without
/// the table, or with `type = "channel"`, an in-process bounded channel.
#[derive(Debug, Clone, Default)]
pub enum BusConfig {
    #[default]
    Channel,
    Kafka(KafkaBusConfig),
}

/// `type = "channel"`: nothing to set (`pipeline.bus_capacity` bounds it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBusConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
}

impl Config {
    /// Reads, interpolates, parses and validates a config file. Relative paths in it are taken
    /// from the file's own directory, not the working directory: a daemon and a cron `--once`
    /// started from other directories share one state directory (and its lock) and one output.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |source| ConfigError::Read { path: path.to_owned(), source };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let absolute = std::path::absolute(path).map_err(read)?;
        let base = absolute.parent().unwrap_or(Path::new("/"));
        Config::parse_in(&text, &path.display().to_string(), |var| std::env::var(var).ok(), Some(base))
    }

    /// Parses config text; `env` resolves `${VAR}`; relative paths stay as they are.
    #[cfg(test)]
    pub fn parse(text: &str, origin: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse_in(text, origin, env, None)
    }

    /// [`Config::parse`], with relative paths taken from `base` when given.
    fn parse_in(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
        base: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let text = interpolate(text, origin, env)?;
        // The kinds are read first and each section is then read as its concrete type, not
        // through a tagged enum: serde buffers tagged content and loses lines and key paths.
        let top: Top = deserialize(&text, origin)?;
        let source = match top.source.kind.get_ref().as_str() {
            "mysql" => SourceConfig::Mysql(deserialize::<SourceSection<_>>(&text, origin)?.source),
            "matomo" => {
                let matomo: MatomoSourceConfig = deserialize::<SourceSection<_>>(&text, origin)?.source;
                SourceConfig::Mysql(matomo.into_mysql())
            }
            "sqlite" => SourceConfig::Sqlite(deserialize::<SourceSection<_>>(&text, origin)?.source),
            other => {
                let known = ["mysql", "matomo", "sqlite"];
                return Err(unknown_kind(&text, origin, "source.type", other, &top.source.kind, &known));
            }
        };
        let sink = match top.sink.kind.get_ref().as_str() {
            "parquet" => SinkConfig::Parquet(deserialize::<SinkSection<_>>(&text, origin)?.sink),
            "mysql" => SinkConfig::Mysql(deserialize::<SinkSection<_>>(&text, origin)?.sink),
            other => {
                return Err(unknown_kind(&text, origin, "sink.type", other, &top.sink.kind, &["parquet", "mysql"]));
            }
        };
        let bus = match &top.bus {
            None => BusConfig::Channel,
            Some(bus) => match bus.kind.get_ref().as_str() {
                "channel" => {
                    let _: ChannelBusConfig = deserialize::<BusSection<_>>(&text, origin)?.bus;
                    BusConfig::Channel
                }
                "kafka" => BusConfig::Kafka(deserialize::<BusSection<KafkaBusConfig>>(&text, origin)?.bus),
                other => return Err(unknown_kind(&text, origin, "bus.type", other, &bus.kind, &["channel", "kafka"])),
            },
        };
        let mut config = Config { pipeline: top.pipeline, source, sink, metrics: top.metrics, bus };
        if let Some(base) = base {
            config.resolve_paths(base);
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Every relative path of the file, taken from `base`.
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                let rest: PathBuf = p.components().filter(|c| *c != std::path::Component::CurDir).collect();
                *p = base.join(rest);
            }
        };
        resolve(&mut self.pipeline.state_dir);
        match &mut self.source {
            SourceConfig::Mysql(source) => {
                if let Some(ca) = &mut source.ssl_ca {
                    resolve(ca);
                }
            }
            SourceConfig::Sqlite(source) => {
                resolve(&mut source.path);
                if let Some(dir) = &mut source.backup_dir {
                    resolve(dir);
                }
            }
        }
        match &mut self.sink {
            SinkConfig::Parquet(p) => resolve(&mut p.path),
            SinkConfig::Mysql(m) => {
                if let Some(ca) = &mut m.ssl_ca {
                    resolve(ca);
                }
            }
        }
    }

    /// Checks what the types cannot, collecting every problem with its key path.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, what: &str| problems.push(format!("{key}: {what}"));
        let name = &self.pipeline.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            problem("pipeline.name", "must be non-empty letters, digits, '_', '-' or '.'");
        }
        if let Some(m) = &self.metrics
            && m.listen.parse::<std::net::SocketAddr>().is_err()
        {
            problem("metrics.listen", "must be host:port with an IP address, e.g. 127.0.0.1:9464");
        }
        let p = &self.pipeline;
        within(&mut problem, "pipeline.bus_capacity", p.bus_capacity as u64, 1, MAX_BUS_CAPACITY);
        within(&mut problem, "pipeline.retry_for_secs", p.retry_for_secs, 0, WEEK_SECS);
        if p.state_dir.as_os_str().is_empty() {
            problem("pipeline.state_dir", "must not be empty (a directory for checkpoints and locks)");
        }
        if let BusConfig::Kafka(k) = &self.bus {
            for (key, message) in k.problems() {
                problem(&format!("bus.{key}"), &message);
            }
        }
        match &self.source {
            SourceConfig::Mysql(s) => s.validate("source", &mut problem),
            SourceConfig::Sqlite(s) => s.validate("source", &mut problem),
        }
        match &self.sink {
            SinkConfig::Parquet(p) => p.validate("sink", &mut problem),
            SinkConfig::Mysql(m) => {
                m.validate("sink", &mut problem);
                if m.foreign_keys && matches!(self.bus, BusConfig::Kafka(_)) {
                    problem(
                        "sink.foreign_keys",
                        "needs the channel bus: a Kafka loader sees a table complete before its parents; \
                         recreate them with a run over the channel bus once the move is done",
                    );
                }
                if let SourceConfig::Mysql(s) = &self.source
                    && same_database(&m.url, &s.url)
                {
                    problem(
                        "sink.url",
                        "is the source's own database (source.url): the sink would write into what it reads",
                    );
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid { origin: origin.to_owned(), problems }) }
    }
}

/// The file's top level: every section, with only the `type` of the source and the sink.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    pipeline: PipelineConfig,
    source: Kind,
    sink: Kind,
    metrics: Option<MetricsConfig>,
    bus: Option<Kind>,
}

#[derive(Deserialize)]
struct BusSection<T> {
    bus: T,
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: Spanned<String>,
}

#[derive(Deserialize)]
struct SourceSection<T> {
    source: T,
}

#[derive(Deserialize)]
struct SinkSection<T> {
    sink: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICKSTART: &str = r#"
[pipeline]
name = "quickstart"
state_dir = "./state"

[source]
type = "mysql"
url = "mysql://root@127.0.0.1:3306/shop"
batch_rows = 10000
lag_secs = 2
poll_interval_secs = 5
tables = [
  { name = "order_tab", cursor = "update_time" },
  { name = "user", cursor = "update_time" },
]

[sink]
type = "parquet"
path = "./out"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", |v| (v == "PW").then(|| "s3cret".to_owned()))
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(QUICKSTART).expect("valid");
        let SourceConfig::Mysql(s) = &c.source else { panic!("a mysql source") };
        assert_eq!(s.tables.len(), 2);
        assert_eq!(s.tables[1].name, "user");
        assert_eq!(s.url.database(), Some("shop"));
        assert!(matches!(c.sink, SinkConfig::Parquet(ref p) if p.path == Path::new("./out")));
    }

    #[test]
    fn foreign_keys_are_refused_behind_kafka_only() {
        let mysql = QUICKSTART.replace(
            "type = \"parquet\"\npath = \"./out\"",
            "type = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/copy\"\nforeign_keys = true",
        );
        let c = parse(&mysql).expect("over the channel");
        assert!(matches!(c.sink, SinkConfig::Mysql(ref m) if m.foreign_keys));
        let kafka = format!("{mysql}\n[bus]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ngroup = \"g\"\n");
        let err = parse(&kafka).expect_err("behind Kafka").to_string();
        assert!(err.contains("sink.foreign_keys: needs the channel bus"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let text = QUICKSTART.replace("lag_secs = 2", "lag_secs = 2\nlag_seconds = 3");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.starts_with("test.toml:11:"), "{err}");
        assert!(err.contains("lag_seconds"), "{err}");
        let text = QUICKSTART.replace("{ name = \"user\", cursor", "{ name = \"user\", cursr");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.contains("cursr") && err.contains("source.tables[1]"), "{err}");
    }

    #[test]
    fn missing_keys_and_wrong_types_are_named() {
        let err = parse(&QUICKSTART.replace("path = \"./out\"", "")).expect_err("missing").to_string();
        assert!(err.contains("path"), "{err}");
        let err = parse(&QUICKSTART.replace("batch_rows = 10000", "batch_rows = \"many\""))
            .expect_err("wrong type")
            .to_string();
        assert!(err.contains("source.batch_rows") && err.contains(":9:"), "{err}");
        let err = parse(&QUICKSTART.replace("type = \"parquet\"", "type = \"csv\"")).expect_err("kind").to_string();
        assert_eq!(err, "test.toml:18:8: sink.type: unknown type \"csv\", expected one of parquet, mysql");
    }

    #[test]
    fn validation_collects_every_problem() {
        let text = QUICKSTART
            .replace("batch_rows = 10000", "batch_rows = 0")
            .replace("{ name = \"user\", cursor = \"update_time\" }", "{ name = \"order_tab\", cursor = \"\" }")
            .replace("mysql://root@127.0.0.1:3306/shop", "postgres://x/y");
        let ConfigError::Invalid { problems, .. } = parse(&text).expect_err("invalid") else {
            panic!("expected validation problems")
        };
        assert_eq!(
            problems,
            [
                "source.url: must start with mysql:// (mysql://user:password@host:port/database)",
                "source.batch_rows: must be between 1 and 1000000",
                "source.tables[1].cursor: must not be empty",
                "source.tables[1].name: table \"order_tab\" is listed twice",
            ]
        );
    }

    #[test]
    fn the_mysql_sinks_bulk_commit_size_defaults_to_32_mib_and_is_checked() {
        let mysql = QUICKSTART
            .replace("type = \"parquet\"", "type = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/replica\"")
            .replace("path = \"./out\"\n", "");
        let Ok(Config { sink: SinkConfig::Mysql(m), .. }) = parse(&mysql) else { panic!("a MySQL sink: {mysql}") };
        assert_eq!(m.bulk_commit_mb, 32);
        let ConfigError::Invalid { problems, .. } =
            parse(&format!("{mysql}bulk_commit_mb = 0\n")).expect_err("invalid")
        else {
            panic!("expected validation problems")
        };
        assert_eq!(problems, ["sink.bulk_commit_mb: must be between 1 and 1024"]);
    }

    #[test]
    fn the_parquet_sinks_commit_size_defaults_to_64_mib_and_is_checked() {
        let Ok(Config { sink: SinkConfig::Parquet(p), .. }) = parse(QUICKSTART) else { panic!("a Parquet sink") };
        assert_eq!(p.commit_mb, 64);
        let ConfigError::Invalid { problems, .. } =
            parse(&format!("{QUICKSTART}commit_mb = 5000\n")).expect_err("invalid")
        else {
            panic!("expected validation problems")
        };
        assert_eq!(problems, ["sink.commit_mb: must be between 1 and 4096"]);
    }

    #[test]
    fn a_once_loaders_wait_for_a_stuck_group_defaults_to_120_s_and_is_checked() {
        let kafka = format!("{QUICKSTART}\n[bus]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ngroup = \"g\"\n");
        let Ok(Config { bus: BusConfig::Kafka(k), .. }) = parse(&kafka) else { panic!("a Kafka bus: {kafka}") };
        assert_eq!(k.once_stuck_secs, 120);
        let Ok(Config { bus: BusConfig::Kafka(k), .. }) = parse(&format!("{kafka}once_stuck_secs = 5\n")) else {
            panic!("a Kafka bus")
        };
        assert_eq!(k.once_stuck_secs, 5);
        let ConfigError::Invalid { problems, .. } =
            parse(&format!("{kafka}once_stuck_secs = 0\n")).expect_err("invalid")
        else {
            panic!("expected validation problems")
        };
        assert_eq!(problems, ["bus.once_stuck_secs: must be between 1 and 86400"]);
    }

    #[test]
    fn tls_settings_are_checked_and_named() {
        let text = QUICKSTART.replace("lag_secs = 2", "lag_secs = 2\nssl_ca = \"/nonexistent/ca.pem\"");
        let ConfigError::Invalid { problems, .. } = parse(&text).expect_err("invalid") else {
            panic!("expected validation problems")
        };
        assert_eq!(problems, ["source.ssl_ca: is only used with ssl_mode = \"verify_identity\""]);
        let text = text.replace("ssl_ca =", "ssl_mode = \"verify_identity\"\nssl_ca =");
        let ConfigError::Invalid { problems, .. } = parse(&text).expect_err("invalid") else {
            panic!("expected validation problems")
        };
        assert_eq!(problems, ["source.ssl_ca: /nonexistent/ca.pem is not a readable file"]);
        let text = QUICKSTART.replace("lag_secs = 2", "lag_secs = 2\nssl_mode = \"sometimes\"");
        let err = parse(&text).expect_err("unknown mode").to_string();
        assert!(err.contains("source.ssl_mode") && err.contains("verify_identity"), "{err}");
    }

    #[test]
    fn env_interpolation_and_redaction() {
        let text = QUICKSTART.replace("root@", "root:${PW}@");
        let c = parse(&text).expect("valid");
        let SourceConfig::Mysql(s) = &c.source else { panic!("a mysql source") };
        assert_eq!(s.url.expose(), "mysql://root:s3cret@127.0.0.1:3306/shop");
        assert_eq!(s.url.to_string(), "mysql://root:***@127.0.0.1:3306/shop");
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = parse(&QUICKSTART.replace("root@", "root:${NOPE}@")).expect_err("unset").to_string();
        assert_eq!(err, "test.toml:8: environment variable NOPE is not set (used as ${NOPE})");
    }

    #[test]
    fn the_matomo_preset_lists_the_log_tables_with_the_prefix() {
        let text = QUICKSTART
            .replace("type = \"mysql\"", "type = \"matomo\"\ntable_prefix = \"piwik_\"")
            .replace("tables = [\n  { name = \"order_tab\", cursor = \"update_time\" },\n  { name = \"user\", cursor = \"update_time\" },\n]\n", "");
        let c = parse(&text).expect("valid");
        let SourceConfig::Mysql(s) = &c.source else { panic!("a mysql source") };
        let tables: Vec<(&str, &str)> = s.tables.iter().map(|t| (t.name.as_str(), t.cursor.as_str())).collect();
        assert_eq!(
            tables,
            [
                ("piwik_log_visit", "visit_last_action_time"),
                ("piwik_log_link_visit_action", "server_time"),
                ("piwik_log_conversion", "server_time"),
                ("piwik_log_conversion_item", "server_time"),
                ("piwik_log_action", "idaction"),
            ]
        );
        assert_eq!(s.batch_rows, 10_000);
        let err = parse(&QUICKSTART.replace("type = \"mysql\"", "type = \"matomo\"")).expect_err("no tables key");
        assert!(err.to_string().contains("unknown field `tables`"), "{err}");
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_files_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("dir");
        let file = dir.path().join("etc/pipeline.toml");
        std::fs::write(&file, QUICKSTART.replace("state_dir = \"./state\"", "state_dir = \"state\"")).expect("write");
        let c = Config::load(&file).expect("valid");
        let etc = std::path::absolute(dir.path().join("etc")).expect("absolute");
        assert_eq!(c.pipeline.state_dir, etc.join("state"));
        assert!(matches!(&c.sink, SinkConfig::Parquet(p) if p.path == etc.join("out")), "{:?}", c.sink);
        // Absolute paths stay.
        std::fs::write(&file, QUICKSTART.replace("./state", "/var/lib/highwater")).expect("write");
        assert_eq!(Config::load(&file).expect("valid").pipeline.state_dir, Path::new("/var/lib/highwater"));
    }

    #[test]
    fn every_toml_example_in_the_readme_and_the_docs_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut readme = std::fs::read_to_string(root.join("README.md")).expect("README");
        for page in std::fs::read_dir(root.join("docs")).expect("docs").flatten() {
            readme.push_str(&std::fs::read_to_string(page.path()).expect("a docs page"));
        }
        let blocks: Vec<&str> =
            readme.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap_or_default()).collect();
        assert!(blocks.len() >= 3, "{} TOML blocks", blocks.len());
        for block in blocks {
            // A block that shows one table is completed with the others from the full example.
            let mut text = block.to_owned();
            for (table, rest) in [
                ("[pipeline]", "[pipeline]\nname = \"readme\"\n"),
                (
                    "[source]",
                    "[source]\ntype = \"mysql\"\nurl = \"mysql://h/db\"\ntables = [{ name = \"t\", cursor = \"c\" }]\n",
                ),
                ("[sink]", "[sink]\ntype = \"parquet\"\npath = \"out\"\n"),
            ] {
                if !block.contains(table) {
                    text = format!("{rest}\n{text}");
                }
            }
            Config::parse(&text, "README.md", |_| Some("x".to_owned())).unwrap_or_else(|e| panic!("{e}\n{block}"));
        }
    }

    #[test]
    fn every_config_file_in_deploy_parses() {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("readable") {
                let path = entry.expect("readable").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"), &mut files);
        for path in &files {
            let text = std::fs::read_to_string(path).expect("readable");
            // Every ${VAR} a file uses is a secret set where it runs.
            Config::parse(&text, &path.display().to_string(), |_| Some("x".to_owned()))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let names: Vec<_> = files.iter().filter_map(|p| p.file_name()?.to_str()).collect();
        for expected in ["quickstart.toml", "mysql-replica.toml", "matomo.toml", "highwater.toml", "pipeline.toml"] {
            assert!(names.contains(&expected), "{expected} not found among {names:?}");
        }
    }
}
