//! Prometheus metrics. Names and labels are constants here; one registry per pipeline, passed
//! by handle (no global statics). Every series carries `pipeline` as a constant label; other
//! labels are bounded: `table` (the configured tables), `stage`, `kind`.

use prometheus::{Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

pub const ROWS_EXTRACTED: &str = "highwater_rows_extracted_total";
pub const ROWS_LOADED: &str = "highwater_rows_loaded_total";
pub const BATCHES: &str = "highwater_batches_total";
pub const STAGE_SECONDS: &str = "highwater_stage_seconds";
pub const LAG_SECONDS: &str = "highwater_lag_seconds";
pub const CHECKPOINT_CURSOR: &str = "highwater_checkpoint_cursor_timestamp_seconds";
pub const ERRORS: &str = "highwater_errors_total";
pub const NULL_CURSOR_ROWS: &str = "highwater_null_cursor_rows_total";
pub const ZERO_DATES: &str = "highwater_zero_dates_total";
pub const BUS_IN_FLIGHT: &str = "highwater_bus_batches_in_flight";

pub const LABEL_PIPELINE: &str = "pipeline";
pub const LABEL_TABLE: &str = "table";
pub const LABEL_STAGE: &str = "stage";
pub const LABEL_KIND: &str = "kind";

/// Stages timed by `highwater_stage_seconds`.
pub const STAGE_EXTRACT: &str = "extract";
pub const STAGE_LOAD: &str = "load";
pub const STAGE_CHECKPOINT: &str = "checkpoint";

/// Error kinds of `highwater_errors_total`: whether a retry can help.
pub const KIND_RETRYABLE: &str = "retryable";
pub const KIND_OPERATOR: &str = "operator";

/// Stage durations from 1 ms to about 65 s.
const STAGE_BUCKETS: [f64; 9] = [0.001, 0.004, 0.016, 0.064, 0.256, 1.0, 4.0, 16.0, 64.0];

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
    pub bus_in_flight: Gauge,
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
        Ok(Metrics {
            rows_extracted: counter(ROWS_EXTRACTED, "Rows read from the source", &[LABEL_TABLE])?,
            rows_loaded: counter(ROWS_LOADED, "Rows made durable in the sink", &[LABEL_TABLE])?,
            batches: counter(BATCHES, "Batches made durable in the sink", &[LABEL_TABLE])?,
            lag_seconds: gauge(LAG_SECONDS, "Seconds the sink is behind: now minus the newest source time loaded")?,
            checkpoint_cursor: gauge(CHECKPOINT_CURSOR, "The checkpoint's cursor value, as seconds since the epoch")?,
            errors: counter(ERRORS, "Errors that stopped a stage", &[LABEL_STAGE, LABEL_KIND])?,
            null_cursor_rows: counter(NULL_CURSOR_ROWS, "Rows read whose cursor is NULL", &[LABEL_TABLE])?,
            zero_dates: counter(ZERO_DATES, "Zero or partial-zero dates loaded as NULL", &[LABEL_TABLE])?,
            stage_seconds,
            bus_in_flight,
            registry,
        })
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
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
}
