"""Airflow: one highwater catch-up pass every 15 minutes.

`highwater run --once` exits 0 when every table is caught up, 1 on a failure (a retry may get
past a restarted server; `highwater status` says which table and why), 2 when the config is
invalid (a person must fix it). Airflow retries non-zero exits; `check` runs first so that a
missing cursor index fails the run before it scans a table.

Put the binary and /etc/highwater/pipeline.toml on the workers; secrets come from an Airflow
connection or variable exported as the environment variables the config names.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

CONFIG = "/etc/highwater/pipeline.toml"

with DAG(
    dag_id="highwater_shop",
    start_date=datetime(2026, 11, 1),
    schedule=timedelta(minutes=15),
    catchup=False,
    max_active_runs=1,  # one pass at a time: highwater also locks its state_dir
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
    tags=["highwater", "replication"],
) as dag:
    check = BashOperator(
        task_id="check",
        bash_command=f"highwater check --config {CONFIG}",
        retries=0,
    )
    load = BashOperator(
        task_id="run_once",
        bash_command=f"highwater run --once --config {CONFIG} --log-format json",
        env={"SOURCE_PASSWORD": "{{ var.value.highwater_source_password }}"},
        append_env=True,
        execution_timeout=timedelta(hours=2),
    )
    check >> load
