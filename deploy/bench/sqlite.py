"""The SQLite source's first copy, side by side with what users would use instead.

Makes a SQLite file with one table of N rows shaped like a gateway's request log (ids over
seven years of dates, users skewed toward a few, NULL-heavy columns), then times and measures
the peak memory of:
  - highwater --once into Parquet (by the cursor: a file per date; and copied whole, without a
    cursor: a file per batch), and connectorx reading the same file (its sqlite:// source) into
    Arrow and writing Parquet with pyarrow;
  - highwater --once into MariaDB, and LOAD DATA LOCAL INFILE of the same rows (exported to a
    TSV file first, not timed) into the table highwater created.
Each run is a process of its own; its peak memory is its maximum resident set size.
`cost` is declared REAL, not DECIMAL: connectorx 0.4.6 stops on a NULL in a column whose declared
type it does not know ("Cannot infer type from null for SQLite"), and both tools read one file.
Usage: sqlite.py HIGHWATER_BIN WORK_DIR ROWS MYSQL_HOST MYSQL_PORT DATABASE
"""
import csv
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time


def make_file(path, rows):
    rnd = random.Random(20261205)
    conn = sqlite3.connect(path)
    conn.executescript("""
        PRAGMA journal_mode = WAL;
        CREATE TABLE request_logs (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, model TEXT NOT NULL,
          status INTEGER NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL,
          latency_ms REAL, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE INDEX request_logs_updated ON request_logs (updated_at, id);
    """)
    start = 1546300800  # 2019-01-01
    span = 7 * 365 * 86400
    models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b", "mistral-large"]
    def row(i):
        t = start + int(span * (i / rows)) + rnd.randrange(3600)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % rnd.randrange(1000)
        user = int(rnd.paretovariate(1.2)) % 5000
        failed = rnd.random() < 0.03
        return (i, user, rnd.choice(models), 500 if failed else 200,
                None if failed else rnd.randrange(20, 4000), None if failed else rnd.randrange(1, 2000),
                None if failed else round(rnd.random() * 0.05, 6), round(rnd.expovariate(1 / 800), 3),
                "upstream timeout after 30 s" if failed else None, stamp, stamp)
    batch = 50000
    for lo in range(1, rows + 1, batch):
        conn.executemany("INSERT INTO request_logs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         [row(i) for i in range(lo, min(lo + batch, rows + 1))])
    conn.commit()
    conn.close()


def measured(cmd, env=None):
    """Runs cmd in a child of a fresh process: (seconds, peak RSS in MB, stdout)."""
    probe = ("import resource,subprocess,sys,time;t=time.time();"
             "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
             "print(p.stdout,file=sys.stderr) if p.returncode else None;"
             "print(p.stderr[-3000:],file=sys.stderr) if p.returncode else None;"
             "print(time.time()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, p.returncode)")
    out = subprocess.run([sys.executable, "-c", probe] + cmd, capture_output=True, text=True, env=env)
    secs, mb, code = out.stdout.split()
    if code != "0":
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return float(secs), float(mb)


def config(work, name, sink, table='{ name = "request_logs", cursor = "updated_at" }'):
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""[pipeline]
name = "{name}"
state_dir = "{work}/state-{name}"

[source]
type = "sqlite"
path = "{work}/gateway.db"
lag_secs = 0
tables = [{table}]

[sink]
{sink}
""")
    return path


def mysql(host, port, db, *args):
    out = subprocess.run(["mariadb", "-h", host, "-P", port, "-u", "root", "--local-infile=1", db, *args],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"mariadb {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def main():
    bin, work, rows, host, port, db = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
    path = os.path.join(work, "gateway.db")
    t = time.time()
    make_file(path, rows)
    print(f"== {rows} rows in {path} ({os.path.getsize(path) >> 20} MB), made in {time.time() - t:.1f} s")
    results = []
    env = dict(os.environ, HIGHWATER_LOG="warn")

    parquet = config(work, "pq", f'type = "parquet"\npath = "{work}/out"')
    results.append(("highwater -> Parquet", *measured([bin, "run", "--once", "--config", parquet], env)))
    # The same rows with no cursor: copied whole, a file per batch, no date partitions; the
    # layout closest to connectorx's one file.
    whole = config(work, "whole", f'type = "parquet"\npath = "{work}/whole"', '{ name = "request_logs" }')
    results.append(("highwater -> Parquet, whole", *measured([bin, "run", "--once", "--config", whole], env)))
    cx = ("import connectorx as cx, pyarrow.parquet as pq, sys;"
          "t = cx.read_sql('sqlite://' + sys.argv[1], 'SELECT * FROM request_logs', return_type='arrow');"
          "pq.write_table(t, sys.argv[2], compression='zstd')")
    results.append(("connectorx -> Parquet", *measured([sys.executable, "-c", cx, path, f"{work}/cx.parquet"])))

    mysql(host, port, "", "-e", f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}")
    sink = config(work, "my", f'type = "mysql"\nurl = "mysql://root@{host}:{port}/{db}"')
    results.append(("highwater -> MariaDB", *measured([bin, "run", "--once", "--config", sink], env)))
    tsv = os.path.join(work, "rows.tsv")
    conn = sqlite3.connect(path)
    with open(tsv, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for r in conn.execute("SELECT id, user_id, model, status, prompt_tokens, completion_tokens, cost, latency_ms, "
                              "error, replace(replace(created_at, 'T', ' '), 'Z', ''), "
                              "replace(replace(updated_at, 'T', ' '), 'Z', '') FROM request_logs"):
            w.writerow(["\\N" if v is None else v for v in r])
    mysql(host, port, db, "-e", "CREATE TABLE by_infile LIKE request_logs")
    load = (f"LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE by_infile FIELDS TERMINATED BY '\\t' "
            "LINES TERMINATED BY '\\n'")
    results.append(("LOAD DATA LOCAL INFILE", *measured(["mariadb", "-h", host, "-P", port, "-u", "root",
                                                           "--local-infile=1", db, "-e", load])))
    counts = mysql(host, port, db, "-N", "-e", "SELECT (SELECT COUNT(*) FROM request_logs), (SELECT COUNT(*) FROM by_infile)")
    mysql(host, port, "", "-e", f"DROP DATABASE {db}")

    print(f"{'':26}{'seconds':>10}{'rows/s':>12}{'peak MB':>10}")
    for name, secs, mb in results:
        print(f"{name:26}{secs:10.2f}{rows / secs:12.0f}{mb:10.0f}")
    (_, hs, hm), (_, ws, wm), (_, cs, cm), (_, ms, _), (_, ls, _) = results
    files = sum(len([n for n in names if n.endswith(".parquet")]) for _, _, names in os.walk(f"{work}/out"))
    whole_files = sum(len([n for n in names if n.endswith(".parquet")]) for _, _, names in os.walk(f"{work}/whole"))
    print(f"Parquet files: highwater {files} (a file per date, each fsynced), whole {whole_files} "
          "(a file per batch, fsynced), connectorx 1 (not fsynced)")
    print(f"rows in MariaDB (highwater, infile): {counts.split()}")
    print(f"highwater / connectorx: {cs / hs:.2f}x the rows/s at {hm / cm:.2f}x the peak memory")
    print(f"highwater whole / connectorx: {cs / ws:.2f}x the rows/s at {wm / cm:.2f}x the peak memory")
    print(f"highwater / LOAD DATA LOCAL INFILE: {ls / ms:.2f}x the rows/s")


main()
