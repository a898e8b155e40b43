//! `highwater reconcile`: the MySQL sink's reconciler (`highwater_sinks::mysql::reconcile`) over
//! the configured tables, one line of findings per table.

use std::time::Instant;

use crate::config::{Config, SinkConfig, SourceConfig};
use anyhow::bail;
use highwater_sinks::mysql::reconcile::Reconciler;

pub async fn run_reconcile(config: &Config, only: Option<&str>, chunk_rows: u64, dry_run: bool) -> anyhow::Result<()> {
    let SourceConfig::Mysql(source) = &config.source else {
        anyhow::bail!("reconcile compares a MySQL source with its MySQL sink: this config's source is not MySQL");
    };
    let SinkConfig::Mysql(sink) = &config.sink else {
        bail!("reconcile compares the source with a MySQL sink; this pipeline's sink is not one (sink.type)");
    };
    let reconciler = Reconciler::open(&source.url, &source.pool, &source.tls(), sink).await?;
    let source_db = source.url.database().unwrap_or_default();
    let tables: Vec<(&str, &str)> = source
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.cursor.as_str()))
        .filter(|(t, _)| only.is_none_or(|o| o == *t))
        .collect();
    if tables.is_empty() {
        bail!("no table {:?} in source.tables", only.unwrap_or_default());
    }
    for (table, cursor) in tables {
        let started = Instant::now();
        // Its errors name the table.
        let r = reconciler.table(table, cursor, chunk_rows, dry_run).await?;
        out!(
            "{source_db}.{table}: {} ranges compared, {} differed, {} keys fetched; {} {} from the sink, \
             {} not yet in the sink ({:.2} s)",
            r.ranges,
            r.differing,
            r.keys_fetched,
            r.deleted,
            if dry_run { "rows to delete (dry run)" } else { "rows deleted" },
            r.missing,
            started.elapsed().as_secs_f64()
        );
        if r.missing_null_cursor > 0 {
            out!(
                "{source_db}.{table}: {} of those have a NULL {cursor} and a key below what passes read of such \
                 rows: no pass brings them; set their {cursor} (UPDATE ... SET {cursor} = NOW(6)) to send them",
                r.missing_null_cursor
            );
        }
    }
    reconciler.close().await;
    Ok(())
}
