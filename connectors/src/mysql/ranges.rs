//! A first copy of a table keyed by one integer column, read as consecutive key ranges on
//! several connections at once and handed on in key order.
//!
//! Each range `(lo, hi]` is sized from the key span and the server's row estimate to about
//! 90% of a batch, so that a range rarely fills its `LIMIT`; when one does, the rest of it,
//! `(last key read, hi]`, is read next, before any later range. Pages are handed on strictly in
//! key order, so the position after each is exact: `Copy { bound, key: hi }` ("every row up to
//! `hi` is copied"), and a restart resumes from it, in the same ranges: the position carries
//! their width and end ([`KeyRanges`](highwater_pipeline::cursor::KeyRanges)), so the batches
//! read again after a restart are the ones read before, under the same names.
//!
//! Rows inserted after the ranges were planned, above the highest key, have cursors above the
//! copy's bound: cursor order reads them after the copy.

use std::collections::VecDeque;

use tokio::task::JoinHandle;

/// Ranges read at once. Measured on the 2-core target (1M rows to Parquet): 1 range at a time
/// 1.74 s, 2 ranges 1.55 s, 3 ranges 1.50 s: one more than the cores keeps a range streaming
/// from the server while the others are decoded.
pub const PARALLEL: usize = 3;

/// The key ranges still to read, `(lo, hi]`, up to the highest key when they were planned,
/// each ending on `max - k * step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    next_lo: i128,
    max: i128,
    step: i128,
}

impl Ranges {
    /// Ranges after `lo` up to `max`, for a table whose keys span `min..=max` and hold about
    /// `estimated_rows` rows, each range meant to hold about 90% of `limit` rows.
    pub fn new(lo: i128, min: i128, max: i128, estimated_rows: u64, limit: usize) -> Ranges {
        let span = (max - min + 1).max(1);
        let rows = i128::from(estimated_rows.max(1));
        let step = (span * limit as i128 * 9 / 10 / rows).max(1);
        Ranges { next_lo: lo, max, step }
    }

    /// The ranges after `lo` of a copy planned earlier, `step` keys each up to `max` (what
    /// [`Ranges::plan`] said then): the same range ends as that plan's from there on.
    pub fn resume(lo: i128, max: i128, step: u64) -> Ranges {
        Ranges { next_lo: lo, max, step: i128::from(step.max(1)) }
    }

    /// The width of the ranges and where they end, to [`Ranges::resume`] them from.
    pub fn plan(&self) -> (u64, i128) {
        (u64::try_from(self.step).unwrap_or(u64::MAX), self.max)
    }

    /// The next range, `None` once `max` is reached.
    pub fn next_range(&mut self) -> Option<(i128, i128)> {
        if self.next_lo >= self.max {
            return None;
        }
        // Ranges end on a grid counted back from `max`: `max`, `max - step`, ... The first
        // range may be shorter, and a copy resumed from any key, at a range's end or inside
        // one (after a page that filled its `LIMIT`), goes on to the same ends.
        let hi = self.max - (self.max - self.next_lo - 1) / self.step * self.step;
        let range = (self.next_lo, hi);
        self.next_lo = hi;
        Some(range)
    }
}

/// Ranges being read, oldest first, each by a task of its own.
pub struct InFlight<T> {
    reads: VecDeque<(i128, i128, JoinHandle<T>)>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight { reads: VecDeque::new() }
    }
}

impl<T> InFlight<T> {
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    pub fn push_back(&mut self, lo: i128, hi: i128, task: JoinHandle<T>) {
        self.reads.push_back((lo, hi, task));
    }

    /// A range to read before every other: the rest of one that filled its page.
    pub fn push_front(&mut self, lo: i128, hi: i128, task: JoinHandle<T>) {
        self.reads.push_front((lo, hi, task));
    }

    pub fn pop_front(&mut self) -> Option<(i128, i128, JoinHandle<T>)> {
        self.reads.pop_front()
    }
}

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        for (_, _, task) in &self.reads {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_key_once_in_order() {
        // 1,000,000 keys from 1, 10,000 rows a page: ranges of 9,000 keys, ending on
        // 1,000,000 - k * 9,000, the first one shorter.
        let mut r = Ranges::new(0, 1, 1_000_000, 1_000_000, 10_000);
        assert_eq!(r.next_range(), Some((0, 1_000)));
        assert_eq!(r.next_range(), Some((1_000, 10_000)));
        let mut covered = 10_000;
        let mut last_hi = 10_000;
        while let Some((lo, hi)) = r.next_range() {
            assert_eq!(lo, last_hi, "contiguous");
            assert_eq!(hi - lo, 9_000);
            covered += hi - lo;
            last_hi = hi;
        }
        assert_eq!((covered, last_hi), (1_000_000, 1_000_000));
    }

    #[test]
    fn sparse_keys_make_wide_ranges_and_a_resume_starts_where_it_stopped() {
        // 1,000 rows over keys up to 10^12: few ranges, not 10^8 empty ones.
        let mut r = Ranges::new(0, 1, 1_000_000_000_000, 1_000, 10_000);
        assert_eq!(r.next_range(), Some((0, 1_000_000_000_000)));
        assert_eq!(r.next_range(), None);
        let mut resumed = Ranges::new(500, 1, 1_000, 1_000, 100);
        assert_eq!(resumed.next_range(), Some((500, 550)));
        assert_eq!(resumed.next_range(), Some((550, 640)));
        // Keys wider than i64 (BIGINT UNSIGNED) and an estimate of 0 rows.
        let mut wide = Ranges::new(i128::from(u64::MAX) - 10, 0, i128::from(u64::MAX), 0, 10);
        assert_eq!(wide.next_range(), Some((i128::from(u64::MAX) - 10, i128::from(u64::MAX))));
        let mut signed = Ranges::new(i128::from(i64::MIN), i128::from(i64::MIN) + 1, i128::from(i64::MAX), 1, 10);
        assert_eq!(signed.next_range(), Some((i128::from(i64::MIN), i128::from(i64::MAX))));
    }

    #[test]
    fn a_resumed_plan_goes_on_to_the_range_ends_the_first_would_have() {
        let rest = |r: &mut Ranges| std::iter::from_fn(|| r.next_range()).collect::<Vec<_>>();
        let mut first = Ranges::new(0, 1, 1_000_000, 1_000_000, 10_000);
        first.next_range();
        // Stopped before its second range, (1000, 10000], was read.
        let second = first.next_range().expect("a second range");
        let (step, max) = first.plan();
        let ahead = rest(&mut first.clone());
        // Planned afresh from there, with another estimate and a higher key since, the ranges
        // differ.
        let mut afresh = Ranges::new(second.0, 1, 2_000_000, 5_000_000, 10_000);
        assert_eq!(afresh.next_range(), Some((1_000, 2_000)));
        // Resumed, they are the same.
        let resumed = rest(&mut Ranges::resume(second.0, max, step));
        assert_eq!(resumed[0], second);
        assert_eq!(resumed[1..], ahead);
        // Stopped inside that range, after a page that filled its LIMIT at key 4321: the rest
        // of the range, then the same ranges.
        let inside = rest(&mut Ranges::resume(4_321, max, step));
        assert_eq!(inside[0], (4_321, 10_000));
        assert_eq!(inside[1..], ahead);
        // A step wider than u64 is kept as the widest there is: one range to the end.
        let wide = Ranges::new(i128::from(i64::MIN), i128::from(i64::MIN), i128::from(i64::MAX), 1, 10);
        let (step, max) = wide.plan();
        assert_eq!(Ranges::resume(0, max, step).next_range(), Some((0, i128::from(i64::MAX))));
    }
}
