//! Progress of long passes: rows done, rows/s and, for a first copy, the share done and an
//! ETA from the table's estimated row count.
//!
//! On a terminal the line is redrawn in place a few times a second; otherwise a log line is
//! written every [`LOG_EVERY`]. Passes shorter than one interval print nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::schema::TableId;

/// Between progress log lines when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Between redraws of the progress line on a terminal.
pub const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressOutput {
    /// Nothing (tests, `--quiet` callers).
    Off,
    /// A line on stderr, redrawn in place.
    Terminal,
    /// `tracing` info lines.
    Log,
}

impl ProgressOutput {
    fn interval(self) -> Duration {
        match self {
            ProgressOutput::Terminal => REDRAW_EVERY,
            _ => LOG_EVERY,
        }
    }
}

/// The progress of one pass over one table.
pub struct Progress {
    table: TableId,
    /// The table's estimated row count, for a pass that copies the whole table.
    total: Option<u64>,
    output: ProgressOutput,
    started: Instant,
    last_shown: Instant,
    rows: u64,
    /// Whether a terminal line is on screen and needs ending.
    drawn: bool,
}

impl Progress {
    /// Starts tracking; `total` is the estimated rows of a first copy, `None` otherwise.
    pub fn start(table: TableId, total: Option<u64>, output: ProgressOutput, now: Instant) -> Self {
        Progress { table, total, output, started: now, last_shown: now, rows: 0, drawn: false }
    }

    /// Counts `rows` more and shows the progress when it is due.
    pub fn advance(&mut self, rows: u64, now: Instant) {
        self.rows += rows;
        if self.output == ProgressOutput::Off || now.duration_since(self.last_shown) < self.output.interval() {
            return;
        }
        self.last_shown = now;
        let elapsed = now.duration_since(self.started);
        match self.output {
            ProgressOutput::Terminal => {
                let mut err = std::io::stderr().lock();
                // A progress line that cannot be drawn is not worth failing the copy for.
                let _ = write!(err, "\r\x1b[2K{}", line(&self.table, self.rows, self.total, elapsed));
                let _ = err.flush();
                self.drawn = true;
            }
            ProgressOutput::Log => {
                let rate = rate(self.rows, elapsed);
                let eta = eta(self.rows, self.total, elapsed).map(|d| d.as_secs());
                tracing::info!(
                    table = %self.table, rows = self.rows, estimated_rows = self.total,
                    rows_per_second = rate.round(), eta_seconds = eta, "copying"
                );
            }
            ProgressOutput::Off => {}
        }
    }

    /// Ends the terminal line, if one was drawn.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

fn rate(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(1e-3)
}

/// The time left at the rate so far, while the estimate is ahead of the rows done.
fn eta(rows: u64, total: Option<u64>, elapsed: Duration) -> Option<Duration> {
    let left = total?.checked_sub(rows).filter(|left| *left > 0)?;
    let rate = rate(rows, elapsed);
    (rows > 0).then(|| Duration::from_secs_f64(left as f64 / rate))
}

/// `shop.orders  120000 of ~350000 rows (34%)  85000 rows/s  ETA 3s`.
pub fn line(table: &TableId, rows: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = rate(rows, elapsed);
    let mut out = format!("{table}  {rows}");
    match total {
        // Estimates (information_schema) can be below the real count: then only the rows.
        Some(t) if t >= rows && t > 0 => {
            out.push_str(&format!(" of ~{t} rows ({}%)", rows * 100 / t));
        }
        _ => out.push_str(" rows"),
    }
    out.push_str(&format!("  {rate:.0} rows/s"));
    if let Some(left) = eta(rows, total, elapsed) {
        out.push_str(&format!("  ETA {}", human(left)));
    }
    out
}

/// `4s`, `3m 05s`, `2h 10m`, `52d 10h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableId {
        TableId { database: "shop".into(), table: "orders".into() }
    }

    #[test]
    fn a_first_copy_shows_share_rate_and_eta() {
        let l = line(&table(), 120_000, Some(360_000), Duration::from_secs(2));
        assert_eq!(l, "shop.orders  120000 of ~360000 rows (33%)  60000 rows/s  ETA 4s");
    }

    #[test]
    fn without_an_estimate_or_past_it_only_rows_and_rate() {
        assert_eq!(line(&table(), 500, None, Duration::from_secs(1)), "shop.orders  500 rows  500 rows/s");
        let past = line(&table(), 500, Some(400), Duration::from_secs(1));
        assert_eq!(past, "shop.orders  500 rows  500 rows/s", "an estimate below the count is dropped");
        assert_eq!(eta(0, Some(10), Duration::from_secs(1)), None, "no rate yet, no ETA");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_secs(4)), "4s");
        assert_eq!(human(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human(Duration::from_secs(7800)), "2h 10m");
        assert_eq!(human(Duration::from_secs(52 * 86_400 + 10 * 3600 + 59)), "52d 10h");
    }

    #[test]
    fn nothing_is_shown_before_an_interval_has_passed() {
        let start = Instant::now();
        let mut p = Progress::start(table(), Some(10), ProgressOutput::Log, start);
        p.advance(5, start + Duration::from_secs(1));
        assert_eq!(p.last_shown, start, "not due yet");
        p.advance(5, start + LOG_EVERY + Duration::from_secs(1));
        assert_eq!(p.last_shown, start + LOG_EVERY + Duration::from_secs(1), "shown once due");
        assert_eq!(p.rows, 10);
    }
}
