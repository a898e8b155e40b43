//! When a `--once` loader may stop: its group has loaded everything its topics held.
//!
//! A quiet bus alone does not say so. A rebalance (a member joining or expired) leaves a
//! loader with no partitions for seconds; a busy broker answers a watermark query late or
//! not at all; a partition may be another member's. A loader that stopped on any of these
//! exited 0 with rows still on the bus, which a cron user reads as "all loaded". So a
//! `--once` loader stops only when every partition of its topics is confirmed read:
//!
//! - empty (its end is its start), or
//! - assigned to this loader, and its position (before it read any there, its group's
//!   committed offset, else the partition's start) is at the end, or
//! - not assigned to it, and its group's committed offset is at the end (another member
//!   loaded it).
//!
//! A topic the broker does not know has nothing to read. Anything the broker could not tell
//! (an error, a timeout) is not confirmed: the loader waits and asks again. A loader that
//! cannot confirm for `bus.once_stuck_secs` (120 s) while nothing moves in its group fails the
//! run, naming the partition, rather than exit 0.

use std::time::{Duration, Instant};

/// What a loader knows of one partition of its topics when its bus is quiet.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionFacts {
    pub topic: String,
    pub partition: i32,
    /// The partition's (start, end) offsets, or why the broker did not tell them.
    pub watermarks: Result<(i64, i64), String>,
    /// Whether the partition is assigned to this loader.
    pub mine: bool,
    /// This loader's position in it (the offset after the last message it read), if it read any.
    pub position: Option<i64>,
    /// The group's committed offset in it, if any.
    pub committed: Option<i64>,
}

/// Whether a partition is read to its end, and if not, why.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Read,
    /// Messages not yet loaded: `behind` of them, in a partition this loader holds or not.
    Behind {
        behind: i64,
        mine: bool,
    },
    /// The broker did not say.
    Unknown(String),
}

impl PartitionFacts {
    pub fn verdict(&self) -> Verdict {
        let (start, end) = match &self.watermarks {
            Ok(w) => *w,
            Err(why) => return Verdict::Unknown(why.clone()),
        };
        if end <= start {
            return Verdict::Read;
        }
        let at =
            if self.mine { self.position.or(self.committed).unwrap_or(start) } else { self.committed.unwrap_or(start) };
        if at >= end { Verdict::Read } else { Verdict::Behind { behind: end - at.max(start), mine: self.mine } }
    }

    /// The offset the group or this loader has reached: what moves while anyone loads.
    fn reached(&self) -> i64 {
        self.position.unwrap_or(0).max(self.committed.unwrap_or(0))
    }
}

/// The first partition not confirmed read, with its verdict; `None` when all are.
pub fn first_unread(facts: &[PartitionFacts]) -> Option<(&PartitionFacts, Verdict)> {
    facts.iter().map(|f| (f, f.verdict())).find(|(_, v)| *v != Verdict::Read)
}

/// Tracks how long a `--once` loader has been unable to confirm its topics read while nothing
/// moved in its group.
#[derive(Debug, Default)]
pub struct Stuck {
    since: Option<(Instant, i64)>,
}

impl Stuck {
    /// A message arrived: something moves.
    pub fn moved(&mut self) {
        self.since = None;
    }

    /// The topics are not confirmed read; `facts` is what was seen. Returns how long nothing
    /// has moved (no message, no offset of the group advancing).
    pub fn unconfirmed(&mut self, facts: &[PartitionFacts], now: Instant) -> Duration {
        let reached: i64 = facts.iter().map(PartitionFacts::reached).sum();
        match self.since {
            Some((since, before)) if before == reached => now.duration_since(since),
            _ => {
                self.since = Some((now, reached));
                Duration::ZERO
            }
        }
    }
}

/// The error of a `--once` loader that could not confirm its topics read for `waited`, at
/// least its `limit` (`bus.once_stuck_secs`).
pub fn stuck_error(
    group: &str,
    facts: &PartitionFacts,
    verdict: &Verdict,
    waited: Duration,
    limit: Duration,
) -> String {
    let (topic, partition) = (&facts.topic, facts.partition);
    let why = match verdict {
        Verdict::Behind { behind, mine: true } => {
            format!("{behind} messages are not loaded and none arrived (is the broker serving fetches?)")
        }
        Verdict::Behind { behind, mine: false } => format!(
            "{behind} messages are not loaded, and the partition is another member's of group {group}, which \
             commits no progress (a loader that is stuck or failing; its log says why)"
        ),
        Verdict::Unknown(why) => format!("the broker does not tell its end offset: {why}"),
        Verdict::Read => "read".to_owned(),
    };
    // A topic whose metadata did not come has no partition to name.
    let place = if partition < 0 { format!("topic {topic}") } else { format!("topic {topic} partition {partition}") };
    format!(
        "--once: {place}: {why}. Waited {} s with nothing moving (bus.once_stuck_secs = {}); the rows stay on \
         the bus for the next run",
        waited.as_secs(),
        limit.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        watermarks: Result<(i64, i64), String>,
        mine: bool,
        position: Option<i64>,
        committed: Option<i64>,
    ) -> PartitionFacts {
        PartitionFacts { topic: "t".to_owned(), partition: 0, watermarks, mine, position, committed }
    }

    #[test]
    fn a_partition_of_this_loader_is_read_when_its_position_reaches_the_end() {
        assert_eq!(facts(Ok((0, 100)), true, Some(100), Some(40)).verdict(), Verdict::Read);
        assert_eq!(
            facts(Ok((0, 100)), true, Some(86), Some(100)).verdict(),
            Verdict::Behind { behind: 14, mine: true }
        );
        // Nothing read there yet this run: the group's committed offset, else the start.
        assert_eq!(facts(Ok((0, 100)), true, None, Some(100)).verdict(), Verdict::Read);
        assert_eq!(facts(Ok((20, 100)), true, None, None).verdict(), Verdict::Behind { behind: 80, mine: true });
    }

    #[test]
    fn a_partition_of_another_member_is_read_only_once_the_group_committed_its_end() {
        // During a rebalance a loader holds nothing: what it had not committed is not read.
        assert_eq!(
            facts(Ok((0, 100)), false, Some(100), Some(86)).verdict(),
            Verdict::Behind { behind: 14, mine: false }
        );
        assert_eq!(facts(Ok((0, 100)), false, None, None).verdict(), Verdict::Behind { behind: 100, mine: false });
        assert_eq!(facts(Ok((0, 100)), false, None, Some(100)).verdict(), Verdict::Read);
    }

    #[test]
    fn an_empty_partition_is_read_and_one_whose_end_is_unknown_is_not() {
        assert_eq!(facts(Ok((7, 7)), false, None, None).verdict(), Verdict::Read);
        assert_eq!(
            facts(Err("timed out".to_owned()), true, Some(100), Some(100)).verdict(),
            Verdict::Unknown("timed out".to_owned())
        );
        let all = [facts(Ok((0, 5)), true, Some(5), None), facts(Err("timed out".to_owned()), true, None, None)];
        assert_eq!(first_unread(&all).map(|(_, v)| v), Some(Verdict::Unknown("timed out".to_owned())));
        assert_eq!(first_unread(&all[..1]), None);
    }

    #[test]
    fn the_error_of_a_stuck_loader_names_the_partition_and_why() {
        let theirs = PartitionFacts { partition: 2, ..facts(Ok((0, 100)), false, None, Some(86)) };
        let e = stuck_error("g", &theirs, &theirs.verdict(), Duration::from_secs(123), Duration::from_secs(120));
        assert!(e.contains("topic t partition 2: 14 messages are not loaded") && e.contains("group g"), "{e}");
        assert!(e.contains("Waited 123 s with nothing moving (bus.once_stuck_secs = 120)"), "{e}");
        let no_metadata = PartitionFacts { partition: -1, ..facts(Err("timed out".to_owned()), false, None, None) };
        let e = stuck_error("g", &no_metadata, &no_metadata.verdict(), Duration::from_secs(5), Duration::from_secs(5));
        assert!(e.starts_with("--once: topic t: the broker does not tell its end offset: timed out"), "{e}");
    }

    #[test]
    fn waiting_counts_only_while_nothing_moves_in_the_group() {
        let t0 = Instant::now();
        let mut stuck = Stuck::default();
        let other = |committed| [facts(Ok((0, 100)), false, None, Some(committed))];
        assert_eq!(stuck.unconfirmed(&other(10), t0), Duration::ZERO);
        assert_eq!(stuck.unconfirmed(&other(10), t0 + Duration::from_secs(50)), Duration::from_secs(50));
        // Another member committed more: the wait starts again.
        assert_eq!(stuck.unconfirmed(&other(60), t0 + Duration::from_secs(70)), Duration::ZERO);
        assert_eq!(stuck.unconfirmed(&other(60), t0 + Duration::from_secs(100)), Duration::from_secs(30));
        stuck.moved();
        assert_eq!(stuck.unconfirmed(&other(60), t0 + Duration::from_secs(110)), Duration::ZERO);
    }
}
