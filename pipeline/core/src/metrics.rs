//! Prometheus metrics. Names and labels are constants here; one registry per pipeline, passed
//! by handle (no global statics). Every series carries `pipeline` as a constant label; other
//! labels are bounded: `table` (the configured tables), `stage`, `kind`, `pool` (`source`,
//! `sink`) and `state`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::pool::PoolUsage;

pub const ROWS_EXTRACTED: &str = "highwater_rows_extracted_total";
pub const ROWS_LOADED: &str = "highwater_rows_loaded_total";
pub const BATCHES: &str = "highwater_batches_total";
pub const STAGE_SECONDS: &str = "highwater_stage_seconds";
pub const LAG_SECONDS: &str = "highwater_lag_seconds";
pub const CHECKPOINT_CURSOR: &str = "highwater_checkpoint_cursor_timestamp_seconds";
pub const ERRORS: &str = "highwater_errors_total";
pub const NULL_CURSOR_ROWS: &str = "highwater_null_cursor_rows_total";
pub const ZERO_DATES: &str = "highwater_zero_dates_total";
pub const LATE_ROWS: &str = "highwater_late_rows_total";
pub const BUS_IN_FLIGHT: &str = "highwater_bus_batches_in_flight";
pub const POOL_CONNECTIONS: &str = "highwater_pool_connections";
pub const POOL_MAX_CONNECTIONS: &str = "highwater_pool_max_connections";
pub const POOL_WAIT_SECONDS: &str = "highwater_pool_wait_seconds";

/// Every metric family this module exports, for checks of dashboards and alert rules.
pub const ALL: [&str; 14] = [
    ROWS_EXTRACTED,
    ROWS_LOADED,
    BATCHES,
    STAGE_SECONDS,
    LAG_SECONDS,
    CHECKPOINT_CURSOR,
    ERRORS,
    NULL_CURSOR_ROWS,
    ZERO_DATES,
    LATE_ROWS,
    BUS_IN_FLIGHT,
    POOL_CONNECTIONS,
    POOL_MAX_CONNECTIONS,
    POOL_WAIT_SECONDS,
];

pub const LABEL_PIPELINE: &str = "pipeline";
pub const LABEL_TABLE: &str = "table";
pub const LABEL_STAGE: &str = "stage";
pub const LABEL_KIND: &str = "kind";
pub const LABEL_POOL: &str = "pool";
pub const LABEL_STATE: &str = "state";

/// States of `highwater_pool_connections`.
pub const STATE_IDLE: &str = "idle";
pub const STATE_IN_USE: &str = "in_use";
pub const STATE_WAITING: &str = "waiting";

/// Stages timed by `highwater_stage_seconds`.
pub const STAGE_EXTRACT: &str = "extract";
pub const STAGE_LOAD: &str = "load";
pub const STAGE_CHECKPOINT: &str = "checkpoint";

/// Error kinds of `highwater_errors_total`: whether a retry can help.
pub const KIND_RETRYABLE: &str = "retryable";
pub const KIND_OPERATOR: &str = "operator";

/// Stage durations from 1 ms to about 65 s.
const STAGE_BUCKETS: [f64; 9] = [0.001, 0.004, 0.016, 0.064, 0.256, 1.0, 4.0, 16.0, 64.0];
/// Waits for a pooled connection: a free one takes well under 1 ms, a new one a few ms, an
/// exhausted pool up to the connect timeout.
const POOL_WAIT_BUCKETS: [f64; 9] = [0.0001, 0.0005, 0.002, 0.008, 0.032, 0.128, 0.5, 2.0, 10.0];

/// Reads a pool's usage when metrics are rendered.
type PoolSampler = Box<dyn Fn() -> PoolUsage + Send + Sync>;

/// The pipeline's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub rows_extracted: IntCounterVec,
    pub rows_loaded: IntCounterVec,
    pub batches: IntCounterVec,
    pub stage_seconds: HistogramVec,
    pub lag_seconds: GaugeVec,
    pub checkpoint_cursor: GaugeVec,
    pub errors: IntCounterVec,
    pub null_cursor_rows: IntCounterVec,
    pub zero_dates: IntCounterVec,
    pub late_rows: IntCounterVec,
    pub bus_in_flight: Gauge,
    pool_connections: IntGaugeVec,
    pool_max_connections: IntGaugeVec,
    pool_wait_seconds: HistogramVec,
    /// Each watched pool by its label, read at every render.
    pools: Arc<Mutex<Vec<(String, PoolSampler)>>>,
    /// By table: the source time (s since the epoch) up to which the sink holds every change.
    /// `highwater_lag_seconds` is computed from it at every render, so it keeps growing while
    /// nothing is loaded.
    complete_up_to: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Metrics {
    pub fn new(pipeline: &str) -> Result<Self, prometheus::Error> {
        let labels = [(LABEL_PIPELINE.to_owned(), pipeline.to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels))?;
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), &[LABEL_TABLE])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(STAGE_SECONDS, "Seconds per batch spent in each stage").buckets(STAGE_BUCKETS.to_vec()),
            &[LABEL_STAGE],
        )?;
        registry.register(Box::new(stage_seconds.clone()))?;
        let bus_in_flight = Gauge::new(BUS_IN_FLIGHT, "Batches read and not yet written")?;
        registry.register(Box::new(bus_in_flight.clone()))?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(POOL_CONNECTIONS, "Connections of a pool by state (waiting: callers waiting for one)"),
            &[LABEL_POOL, LABEL_STATE],
        )?;
        registry.register(Box::new(pool_connections.clone()))?;
        let pool_max_connections = IntGaugeVec::new(
            Opts::new(POOL_MAX_CONNECTIONS, "The most connections a pool opens: size + max_overflow"),
            &[LABEL_POOL],
        )?;
        registry.register(Box::new(pool_max_connections.clone()))?;
        let pool_wait_seconds = HistogramVec::new(
            HistogramOpts::new(POOL_WAIT_SECONDS, "Seconds spent getting a connection from a pool, pre-ping included")
                .buckets(POOL_WAIT_BUCKETS.to_vec()),
            &[LABEL_POOL],
        )?;
        registry.register(Box::new(pool_wait_seconds.clone()))?;
        let errors = counter(ERRORS, "Errors that stopped a stage", &[LABEL_STAGE, LABEL_KIND])?;
        // Every known series from the start at 0, so that `increase()` sees the first error.
        for stage in [STAGE_EXTRACT, STAGE_LOAD, STAGE_CHECKPOINT] {
            for kind in [KIND_RETRYABLE, KIND_OPERATOR] {
                errors.with_label_values(&[stage, kind]).inc_by(0);
            }
        }
        Ok(Metrics {
            errors,
            rows_extracted: counter(ROWS_EXTRACTED, "Rows read from the source", &[LABEL_TABLE])?,
            rows_loaded: counter(ROWS_LOADED, "Rows made durable in the sink", &[LABEL_TABLE])?,
            batches: counter(BATCHES, "Batches made durable in the sink", &[LABEL_TABLE])?,
            lag_seconds: gauge(
                LAG_SECONDS,
                "Seconds the sink is behind: now minus the source time up to which it holds every change",
            )?,
            checkpoint_cursor: gauge(CHECKPOINT_CURSOR, "The checkpoint's cursor value, as seconds since the epoch")?,
            null_cursor_rows: counter(NULL_CURSOR_ROWS, "Rows read whose cursor is NULL", &[LABEL_TABLE])?,
            zero_dates: counter(ZERO_DATES, "Zero or partial-zero dates loaded as NULL", &[LABEL_TABLE])?,
            late_rows: counter(
                LATE_ROWS,
                "Rows read with a cursor at or below an earlier pass's clock bound: committed late, caught",
                &[LABEL_TABLE],
            )?,
            stage_seconds,
            bus_in_flight,
            pool_connections,
            pool_max_connections,
            pool_wait_seconds,
            pools: Arc::new(Mutex::new(Vec::new())),
            complete_up_to: Arc::new(Mutex::new(BTreeMap::new())),
            registry,
        })
    }

    /// Reports a pool as `pool = label`: its usage is read by `usage` at every render, and the
    /// returned histogram is where the pool records its waits.
    pub fn watch_pool(
        &self,
        label: &str,
        max_connections: usize,
        usage: impl Fn() -> PoolUsage + Send + Sync + 'static,
    ) -> Histogram {
        self.pool_max_connections.with_label_values(&[label]).set(max_connections as i64);
        // A poisoned lock only means a sampler panicked; the list itself is whole.
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|(l, _)| l != label);
        pools.push((label.to_owned(), Box::new(usage)));
        self.pool_wait_seconds.with_label_values(&[label])
    }

    /// The sink now holds every change of `table` up to `unix_seconds` (source time, UTC).
    pub fn set_complete_up_to(&self, table: &str, unix_seconds: f64) {
        // A poisoned lock only means a render panicked; the map is still whole.
        let mut complete = self.complete_up_to.lock().unwrap_or_else(|p| p.into_inner());
        complete.insert(table.to_owned(), unix_seconds);
    }

    fn refresh_lag(&self) {
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else { return };
        let complete = self.complete_up_to.lock().unwrap_or_else(|p| p.into_inner());
        for (table, at) in complete.iter() {
            self.lag_seconds.with_label_values(&[table]).set(now.as_secs_f64() - at);
        }
    }

    fn sample_pools(&self) {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        for (label, usage) in pools.iter() {
            let u = usage();
            for (state, n) in [(STATE_IDLE, u.idle), (STATE_IN_USE, u.in_use), (STATE_WAITING, u.waiting)] {
                self.pool_connections.with_label_values(&[label, state]).set(n as i64);
            }
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.sample_pools();
        self.refresh_lag();
        let mut out = Vec::new();
        // Encoding into a Vec fails only for metric families that cannot exist here.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_with_the_pipeline_label() {
        let m = Metrics::new("quickstart").expect("registers");
        m.rows_loaded.with_label_values(&["shop.orders"]).inc_by(7);
        m.stage_seconds.with_label_values(&[STAGE_LOAD]).observe(0.01);
        let text = m.render();
        assert!(
            text.contains("highwater_rows_loaded_total{table=\"shop.orders\",pipeline=\"quickstart\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("highwater_stage_seconds_bucket{stage=\"load\",pipeline=\"quickstart\",le=\"0.016\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn lag_grows_at_every_render_until_the_sink_completes_more() {
        let m = Metrics::new("p").expect("registers");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        m.set_complete_up_to("d.t", now - 100.0);
        let lag = |text: &str| -> f64 {
            let line = "highwater_lag_seconds{table=\"d.t\",pipeline=\"p\"} ";
            text.lines().find_map(|l| l.strip_prefix(line)).expect("a lag").parse().expect("a number")
        };
        let first = lag(&m.render());
        assert!((100.0..101.0).contains(&first), "{first}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(lag(&m.render()) > first, "nothing new loaded: the lag keeps growing");
        m.set_complete_up_to("d.t", now);
        assert!(lag(&m.render()) < 1.0);
    }

    #[test]
    fn pools_are_read_when_rendered() {
        let m = Metrics::new("p").expect("registers");
        let in_use = Arc::new(std::sync::atomic::AtomicUsize::new(3));
        let seen = in_use.clone();
        let wait = m.watch_pool("source", 30, move || PoolUsage {
            idle: 1,
            in_use: seen.load(std::sync::atomic::Ordering::Relaxed),
            waiting: 0,
        });
        wait.observe(0.001);
        let value = |text: &str, state: &str| {
            let line = format!("highwater_pool_connections{{pool=\"source\",state=\"{state}\",pipeline=\"p\"}} ");
            text.lines().find_map(|l| l.strip_prefix(&line)).map(str::to_owned)
        };
        let text = m.render();
        assert_eq!(value(&text, "in_use").as_deref(), Some("3"), "{text}");
        assert_eq!(value(&text, "idle").as_deref(), Some("1"), "{text}");
        assert!(text.contains("highwater_pool_max_connections{pool=\"source\",pipeline=\"p\"} 30"), "{text}");
        assert!(text.contains("highwater_pool_wait_seconds_count{pool=\"source\",pipeline=\"p\"} 1"), "{text}");
        in_use.store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(value(&m.render(), "in_use").as_deref(), Some("0"), "read anew at each render");
    }
}
