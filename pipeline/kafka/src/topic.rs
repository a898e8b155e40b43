//! Topic names, and the headers highwater puts on its messages. Consumers other than
//! highwater need none of them: the JSON value is self-describing.

use highwater_pipeline::schema::TableId;

/// The table's schema (JSON), on the first message of each piece.
pub const SCHEMA: &str = "highwater.schema";
/// The piece a message belongs to: `<after>-<upto>`; the same on every message of the piece.
pub const PIECE: &str = "highwater.piece";
/// How many messages the piece has on this partition (JSON: one per row).
pub const PIECE_MESSAGES: &str = "highwater.piece_messages";
/// The piece's index among the messages of one batch on one partition (Arrow splits large ones).
pub const PIECE_INDEX: &str = "highwater.piece_index";
/// The batch's `after` and `upto` positions (JSON), on the first message of each piece.
pub const AFTER: &str = "highwater.after";
pub const UPTO: &str = "highwater.upto";
/// Arrow messages: the operations of the rows, `uuud`.
pub const OPS: &str = "highwater.ops";
/// `batch` (rows) or `caught_up` (a heartbeat with no value: the table is complete up to
/// [`BOUND`]); consumers other than highwater skip messages whose value is null.
pub const KIND: &str = "highwater.kind";
pub const BOUND: &str = "highwater.bound";
pub const KIND_CAUGHT_UP: &str = "caught_up";

/// `<prefix><database>.<table>`; characters Kafka does not allow in names become `_`, and a
/// hash of the real name is added then, so two tables never share a topic.
pub fn name(prefix: &str, table: &TableId) -> String {
    let raw = format!("{}.{}", table.database, table.table);
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if clean == raw {
        format!("{prefix}{raw}")
    } else {
        let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        format!("{prefix}{clean}.{:08x}", hash as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafka_safe_and_distinct() {
        let t = |d: &str, n: &str| TableId { database: d.into(), table: n.into() };
        assert_eq!(name("highwater.", &t("shop", "order_tab")), "highwater.shop.order_tab");
        let odd = name("hw.", &t("shop", "order tab"));
        assert!(odd.starts_with("hw.shop.order_tab.") && odd.len() == "hw.shop.order_tab.".len() + 8, "{odd}");
        assert_ne!(odd, name("hw.", &t("shop", "order_tab")));
        assert_ne!(name("hw.", &t("shop", "a b")), name("hw.", &t("shop", "a/b")));
    }
}
