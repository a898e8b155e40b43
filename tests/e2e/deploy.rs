//! `deploy/` is tested as the real tools read it: promtool checks the Prometheus config and
//! unit-tests the alert rules, systemd-analyze verifies the units, every YAML parses and its
//! references resolve, the dashboard and the alerts name only metrics highwater exports, and
//! README.md names every file. Then a real Prometheus, with the repository's scrape config and
//! rules, scrapes a running daemon and sees rows move and lag fall.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, KillOnDrop, Pipeline, TestDb, mysql_sink};
use crate::orders;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Runs a tool that must be installed (deploy/test.sh installs it), asserting it succeeds
/// and prints no warning on stderr.
fn tool(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (deploy/test.sh installs it): {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned() + &stderr
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("readable").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = deploy().join("prometheus");
    tool("promtool", &["check", "config", "prometheus.yml"], &dir);
    let checked = tool("promtool", &["check", "rules", "alerts.yml"], &dir);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = tool("promtool", &["test", "rules", "alerts.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The compose variant points at container paths: its syntax is what can be checked here.
    tool("promtool", &["check", "config", "--syntax-only", "prometheus.yml"], &deploy().join("compose"));
}

#[test]
fn the_systemd_units_verify() {
    // systemd-analyze checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for unit in files_under(&deploy().join("systemd")) {
        let text = std::fs::read_to_string(&unit).expect("readable");
        let text = text.replace("/usr/local/bin/highwater", env!("CARGO_BIN_EXE_highwater"));
        let copy = dir.path().join(unit.file_name().expect("a file"));
        std::fs::write(&copy, text).expect("copy");
        units.push(copy.display().to_string());
    }
    assert_eq!(units.len(), 3, "the daemon, the pass and its timer");
    let mut args = vec!["verify", "--man=no"];
    args.extend(units.iter().map(String::as_str));
    let printed = tool("systemd-analyze", &args, dir.path());
    assert!(printed.trim().is_empty(), "systemd-analyze warns:\n{printed}");
}

#[test]
fn yaml_parses_and_compose_and_kustomize_references_resolve() {
    let script = r#"
import json, os, sys, yaml
root = sys.argv[1]
docs = {}
for dirpath, _, names in os.walk(root):
    for n in names:
        if n.endswith((".yml", ".yaml")):
            p = os.path.join(dirpath, n)
            docs[os.path.relpath(p, root)] = [d for d in yaml.safe_load_all(open(p)) if d is not None]
compose = docs["compose/docker-compose.yml"][0]
for name, svc in compose["services"].items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            assert os.path.exists(os.path.join(root, "compose", src)), f"compose {name}: {src} is missing"
    build = svc.get("build")
    if build:
        ctx = os.path.join(root, "compose", build["context"])
        assert os.path.exists(os.path.join(ctx, build["dockerfile"])), f"compose {name}: no Dockerfile"
k = docs["k8s/kustomization.yaml"][0]
defined = {}
for r in k["resources"]:
    assert os.path.exists(os.path.join(root, "k8s", r)), r
    for d in docs["k8s/" + r]:
        defined.setdefault(d["kind"], set()).add(d["metadata"]["name"])
for g in k["configMapGenerator"]:
    defined.setdefault("ConfigMap", set()).add(g["name"])
    for f in g["files"]:
        assert os.path.exists(os.path.join(root, "k8s", f)), f
for workload in ("k8s/deployment.yaml", "k8s/cronjob.yaml"):
    spec = docs[workload][0]["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec["jobTemplate"]["spec"]["template"]["spec"]
    for vol in pod["volumes"]:
        if "configMap" in vol:
            assert vol["configMap"]["name"] in defined["ConfigMap"], vol
        if "persistentVolumeClaim" in vol:
            assert vol["persistentVolumeClaim"]["claimName"] in defined["PersistentVolumeClaim"], vol
    for c in pod["containers"]:
        for e in c.get("envFrom", []):
            assert e["secretRef"]["name"] in defined["Secret"], e
json.load(open(os.path.join(root, "grafana", "highwater-dashboard.json")))
print(len(docs))
"#;
    let out = tool("python3", &["-c", script, &deploy().display().to_string()], &deploy());
    assert!(out.trim().parse::<usize>().is_ok_and(|n| n >= 12), "YAML files checked: {out}");
    tool("python3", &["-m", "py_compile", "deploy/airflow/highwater_dag.py"], Path::new(env!("CARGO_MANIFEST_DIR")));
    let _ = std::fs::remove_dir_all(deploy().join("airflow/__pycache__"));
}

#[test]
fn the_dashboard_and_the_alerts_use_only_metrics_highwater_exports() {
    let m = highwater_pipeline::metrics::Metrics::new("p").expect("metrics");
    let _ = m.watch_pool("source", 1, Default::default);
    // Labelled families appear once they have a series.
    let exported = m.render();
    let mut checked = 0;
    for file in [deploy().join("grafana/highwater-dashboard.json"), deploy().join("prometheus/alerts.yml")] {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (i, _) in text.match_indices("highwater_") {
            let name: String =
                text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
            let family =
                ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            if family == "highwater_" || name.starts_with("highwater_shop") {
                continue; // the job label or a dashboard uid, not a metric
            }
            let known =
                exported.contains(&format!("# TYPE {family} ")) || highwater_pipeline::metrics::ALL.contains(&family);
            assert!(known, "{}: {name} is not a metric highwater exports", file.display());
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked} metric references checked");
}

#[test]
fn the_readme_or_the_docs_name_every_deploy_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    for page in std::fs::read_dir(root.join("docs")).expect("docs").flatten() {
        readme.push_str(&std::fs::read_to_string(page.path()).expect("a docs page"));
    }
    for file in files_under(&deploy()) {
        let rel = file.strip_prefix(root).expect("under the repository").display().to_string();
        assert!(readme.contains(&rel), "neither README.md nor docs/ mentions {rel}");
    }
}

#[test]
fn the_architecture_names_rooms_that_exist_and_every_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let rooms = doc.split("```").nth(1).expect("the rooms block");
    for line in rooms.lines().filter(|l| !l.starts_with(' ') && !l.trim().is_empty()) {
        let path = line.split_whitespace().next().expect("a path");
        assert!(root.join(path).exists(), "docs/architecture.md names {path}, which does not exist");
    }
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = workspace.split("members = [").nth(1).and_then(|r| r.split(']').next()).expect("members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()) {
        assert!(rooms.contains(&format!("{member}/")), "docs/architecture.md does not place crate {member}");
    }
}

/// `GET path` over HTTP/1.0 (a whole body, never chunked).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_owned())
}

/// The single value of an instant PromQL query, if it has one.
fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_.-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    let body = get(port, &format!("/api/v1/query?query={encoded}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_a_daemon_and_sees_rows_move_and_lag_fall() {
    // A server of its own: the checkpoint row it locks would hold every other test's bound on a
    // shared one (open transactions are the server's, not a database's).
    let server = harness::OwnServer::start();
    let source = TestDb::on(&server.url(), "prom").await;
    let sink = TestDb::on(&server.url(), "prom_sink").await;
    orders(&source, 300, false).await;
    let p = Pipeline::new(&source.url(), &[("orders", "update_time")], 50, &mysql_sink(&sink, 50));
    let (metrics_port, prom_port) = (p.serve_metrics_on_a_free_port(), harness::free_port());

    // The repository's scrape config and rules, pointed at this daemon, scraping every second.
    let prom_dir = p.dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("dir");
    let scrape = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml")).expect("config");
    let scrape = scrape
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics_port}"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(prom_dir.join("prometheus.yml"), scrape).expect("write");
    std::fs::copy(deploy().join("prometheus/alerts.yml"), prom_dir.join("alerts.yml")).expect("copy");
    let _prometheus = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is needed (deploy/test.sh installs it)"),
    );
    let _daemon = KillOnDrop(p.command().spawn().expect("highwater starts"));

    let table = format!("table=\"{}.orders\"", source.name);
    let loaded = format!("sum(highwater_rows_loaded_total{{{table}}})");
    let lag = format!("max(highwater_lag_seconds{{{table}}})");
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !ok() {
            assert!(Instant::now() < deadline, "Prometheus never saw {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // Caught up: 300 rows in, and not behind (the sink holds everything up to the bound).
    wait_for("the first 300 rows", &|| query(prom_port, &loaded).is_some_and(|v| v >= 300.0));
    wait_for("a small lag", &|| query(prom_port, &lag).is_some_and(|v| v < 5.0));
    let rows_before = query(prom_port, &loaded).unwrap_or(0.0);

    // The sink stalls (the test holds the checkpoint row the loader must lock) while changes
    // arrive: the lag rises with every scrape, though nothing is loaded.
    let mut blocker = sink.conn().await;
    {
        use mysql_async::prelude::Queryable;
        blocker.query_drop("BEGIN").await.expect("begin");
        blocker.query_drop("SELECT * FROM _highwater_checkpoints FOR UPDATE").await.expect("lock");
    }
    source.exec("INSERT INTO orders SELECT 1000 + seq, NOW(6), 'live', 1 FROM seq_1_to_40").await;
    wait_for("the lag rising while the sink is blocked", &|| query(prom_port, &lag).is_some_and(|v| v > 8.0));
    assert_eq!(query(prom_port, &loaded), Some(rows_before), "nothing moved while blocked");
    let peak = query(prom_port, &format!("max(max_over_time(highwater_lag_seconds{{{table}}}[1m]))")).unwrap_or(0.0);

    // Released: the rows move and the lag falls.
    {
        use mysql_async::prelude::Queryable;
        blocker.query_drop("ROLLBACK").await.expect("rollback");
    }
    drop(blocker);
    wait_for("the live rows", &|| query(prom_port, &loaded).is_some_and(|v| v >= rows_before + 40.0));
    wait_for("the lag falling", &|| query(prom_port, &lag).is_some_and(|v| v < 5.0));
    assert!(peak > 8.0, "{peak}");
    let rules = get(prom_port, "/api/v1/rules").expect("rules");
    assert_eq!(rules.matches("\"type\":\"alerting\"").count(), 5, "the alert rules are loaded: {rules}");
    assert_eq!(query(prom_port, "count(ALERTS{alertstate=\"firing\"})"), None, "nothing fires on a healthy run");
    source.drop_db().await;
    sink.drop_db().await;
}
