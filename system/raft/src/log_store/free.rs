//! Which parts of a group's records can go: the rule that lets a record shared by many groups be freed
//! without ever changing any group's replayed state (docs/formats/raft-log.md, "Freeing").
//!
//! A group's *parts* (its share of each record, in save order) replay into its state. A part is **dead**
//! when it contributes nothing to that state: it holds neither the latest hard state nor the latest
//! snapshot, and each of its entries is at or below the latest snapshot, overwritten by a newer part, or
//! older than the newest received snapshot. With one group per record, dead records freed oldest first
//! were enough. With shared records, a dead part may stay on the device (another group still needs its
//! record) while a newer dead part of the same group is freed; if that newer part was what truncated
//! the older one's entries, replay would bring them back. So a part is **removable** only if it is dead
//! AND no older present part of the group holds an entry that the part's truncation hides: an entry
//! above the latest snapshot at or after the part's first entry (any entry above the snapshot, for a
//! received snapshot, which clears the whole log).
//!
//! Removing a removable part leaves every index's replay verdict unchanged (the newest part touching
//! it either remains, or was dead and no older present part holds that index above the snapshot), and
//! removability only grows as parts are removed, newer parts are saved and the snapshot advances; so
//! extents can be freed one at a time, in any order, crashing anywhere. A dead part kept because of an
//! older one is released once the older part's record is freed or the snapshot passes its entries.

use std::collections::BTreeMap;

use tessera_store::ExtentId;

/// What the index remembers of one group's part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordMeta {
    /// First and last entry index.
    pub(super) entries: Option<(u64, u64)>,
    pub(super) hard_state: bool,
    /// Index of the snapshot it holds, and whether it was received (replaces the whole log).
    pub(super) snapshot: Option<(u64, bool)>,
}

/// Whether a group still needs its part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Liveness {
    Needed,
    /// Needed only because it holds the group's latest hard state: rewriting that hard state into a
    /// newer record would make it removable.
    HardStateOnly,
    Removable,
}

/// The liveness of every part of one group (present parts, by extent id = save order).
pub(super) fn classify(parts: &BTreeMap<ExtentId, RecordMeta>) -> BTreeMap<ExtentId, Liveness> {
    let latest_hs = parts.iter().rev().find(|(_, m)| m.hard_state).map(|(&id, _)| id);
    let latest_snapshot = parts.iter().rev().find_map(|(&id, m)| m.snapshot.map(|(i, _)| (id, i)));
    let floor = latest_snapshot.map_or(0, |(_, i)| i);
    let replaced_before = parts.iter().rev().find(|(_, m)| matches!(m.snapshot, Some((_, true)))).map(|(&id, _)| id);
    // Pass 1, newest first: which parts hold a live entry. Entries at or after `cut` were overwritten.
    let mut cut = u64::MAX;
    let mut holds_live_entry = BTreeMap::new();
    for (&id, meta) in parts.iter().rev() {
        let mut live = false;
        if let Some((first, last)) = meta.entries {
            let replaced = replaced_before.is_some_and(|r| id < r);
            let lo = first.max(floor + 1);
            let hi = last.min(cut.saturating_sub(1));
            live = !replaced && lo <= hi;
            cut = cut.min(first);
        }
        holds_live_entry.insert(id, live);
    }
    // Pass 2, oldest first: a dead part is removable if no older present part holds an entry its
    // truncation hides.
    let mut max_last_older = 0u64;
    let mut out = BTreeMap::new();
    for (&id, meta) in parts {
        let needed_for_state = holds_live_entry[&id] || Some(id) == latest_snapshot.map(|(sid, _)| sid);
        let touch_from = match (meta.snapshot, meta.entries) {
            (Some((_, true)), _) => 0,
            (_, Some((first, _))) => first,
            _ => u64::MAX,
        };
        let hides_older = max_last_older >= touch_from.max(floor + 1);
        let liveness = if needed_for_state || hides_older {
            Liveness::Needed
        } else if Some(id) == latest_hs {
            Liveness::HardStateOnly
        } else {
            Liveness::Removable
        };
        out.insert(id, liveness);
        if let Some((_, last)) = meta.entries {
            max_last_older = max_last_older.max(last);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: Option<(u64, u64)>, hard_state: bool, snapshot: Option<(u64, bool)>) -> RecordMeta {
        RecordMeta { entries, hard_state, snapshot }
    }

    fn removable(parts: &BTreeMap<ExtentId, RecordMeta>) -> Vec<ExtentId> {
        classify(parts).into_iter().filter(|(_, l)| *l == Liveness::Removable).map(|(id, _)| id).collect()
    }

    #[test]
    fn dead_parts_follow_supersession() {
        let mut parts = BTreeMap::new();
        parts.insert(ExtentId(1), meta(Some((1, 5)), true, None));
        parts.insert(ExtentId(2), meta(None, true, None)); // supersedes hs of 1, 1 still has live entries
        parts.insert(ExtentId(3), meta(Some((4, 6)), false, None)); // overwrites 4..5 of 1
        assert_eq!(removable(&parts), vec![]);
        assert_eq!(classify(&parts)[&ExtentId(2)], Liveness::HardStateOnly);
        parts.insert(ExtentId(4), meta(None, true, None));
        assert_eq!(removable(&parts), vec![ExtentId(2)]);
        parts.remove(&ExtentId(2));
        parts.insert(ExtentId(5), meta(None, false, Some((3, false)))); // compaction at 3: 1 holds only 1..3 live
        assert_eq!(removable(&parts), vec![ExtentId(1)]);
        parts.remove(&ExtentId(1));
        parts.insert(ExtentId(6), meta(Some((7, 9)), true, Some((6, true)))); // received snapshot at 6
        assert_eq!(removable(&parts), vec![ExtentId(3), ExtentId(4), ExtentId(5)]);
    }

    /// A dead part that truncated an older, still present part is kept until that older part goes
    /// (its record pinned by another group) or the snapshot passes the hidden entries.
    #[test]
    fn a_truncating_part_outlives_the_entries_it_hides() {
        let mut parts = BTreeMap::new();
        parts.insert(ExtentId(1), meta(Some((5, 10)), false, None)); // term 1, later overwritten
        parts.insert(ExtentId(2), meta(Some((5, 7)), true, None)); // new leader truncates at 5
        parts.insert(ExtentId(3), meta(None, true, Some((7, false)))); // compaction at 7
        // Both 1 and 2 are dead; 2 hides 8..10 of 1, so only 1 may go.
        assert_eq!(removable(&parts), vec![ExtentId(1)]);
        assert_eq!(classify(&parts)[&ExtentId(2)], Liveness::Needed);
        parts.remove(&ExtentId(1));
        assert_eq!(removable(&parts), vec![ExtentId(2)]);
        // Or: 1 stays (pinned) but the snapshot passes 10.
        let mut parts = BTreeMap::new();
        parts.insert(ExtentId(1), meta(Some((5, 10)), false, None));
        parts.insert(ExtentId(2), meta(Some((5, 7)), false, None));
        parts.insert(ExtentId(3), meta(Some((8, 12)), true, Some((10, false))));
        assert_eq!(removable(&parts), vec![ExtentId(1), ExtentId(2)]);
        // A dead received snapshot hides every older entry above the latest snapshot.
        let mut parts = BTreeMap::new();
        parts.insert(ExtentId(1), meta(Some((5, 50)), false, None));
        parts.insert(ExtentId(2), meta(None, true, Some((20, true))));
        parts.insert(ExtentId(3), meta(None, true, Some((30, false))));
        assert_eq!(removable(&parts), vec![ExtentId(1)]);
        parts.remove(&ExtentId(1));
        assert_eq!(removable(&parts), vec![ExtentId(2)]);
    }
}
