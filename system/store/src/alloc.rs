//! Free-space allocator over the data region: contiguous runs of blocks, best fit, coalescing on release.
//!
//! Two indexes of the same free runs: by start (for coalescing and carving a given range) and by
//! (length, start) (for best fit, lowest address among equals). Purely in memory; rebuilt at mount from
//! the extent table, so it has no on-disk format.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub(crate) struct Allocator {
    region_start_block: u64,
    region_end_block: u64,
    /// start -> len of every free run; runs never touch or overlap (they are coalesced).
    by_start: BTreeMap<u64, u64>,
    by_len: BTreeSet<(u64, u64)>,
    free_blocks: u64,
}

impl Allocator {
    /// Everything in `start_block..start_block + blocks` free.
    pub(crate) fn new_all_free(start_block: u64, blocks: u64) -> Allocator {
        assert!(blocks > 0);
        let mut a = Allocator {
            region_start_block: start_block,
            region_end_block: start_block + blocks,
            by_start: BTreeMap::new(),
            by_len: BTreeSet::new(),
            free_blocks: 0,
        };
        a.insert_run(start_block, blocks);
        a
    }

    pub(crate) fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    /// Best fit: the smallest free run of at least `blocks`, lowest start among equals.
    pub(crate) fn allocate(&mut self, blocks: u64) -> Option<u64> {
        assert!(blocks > 0);
        let &(len, start) = self.by_len.range((blocks, 0)..).next()?;
        self.remove_run(start, len);
        if len > blocks {
            self.insert_run(start + blocks, len - blocks);
        }
        Some(start)
    }

    /// Carves exactly `start..start + blocks` out of free space (recovery). False if any of it is not free.
    pub(crate) fn reserve(&mut self, start: u64, blocks: u64) -> bool {
        assert!(blocks > 0);
        let Some((&run_start, &run_len)) = self.by_start.range(..=start).next_back() else {
            return false;
        };
        let (run_end, end) = (run_start + run_len, start.saturating_add(blocks));
        if end > run_end {
            return false;
        }
        self.remove_run(run_start, run_len);
        if start > run_start {
            self.insert_run(run_start, start - run_start);
        }
        if run_end > end {
            self.insert_run(end, run_end - end);
        }
        true
    }

    /// Returns `start..start + blocks` to free space. Panics if any of it is already free or outside the
    /// region: that would be a double free, a broken invariant.
    pub(crate) fn release(&mut self, start: u64, blocks: u64) {
        assert!(blocks > 0);
        let end = start + blocks;
        assert!(
            start >= self.region_start_block && end <= self.region_end_block,
            "release {start}+{blocks} outside region"
        );
        let (mut new_start, mut new_len) = (start, blocks);
        if let Some((&prev_start, &prev_len)) = self.by_start.range(..start).next_back() {
            assert!(
                prev_start + prev_len <= start,
                "double free: {start}+{blocks} overlaps free run {prev_start}+{prev_len}"
            );
            if prev_start + prev_len == start {
                self.remove_run(prev_start, prev_len);
                (new_start, new_len) = (prev_start, prev_len + new_len);
            }
        }
        if let Some((&next_start, &next_len)) = self.by_start.range(start..).next() {
            assert!(next_start >= end, "double free: {start}+{blocks} overlaps free run {next_start}+{next_len}");
            if next_start == end {
                self.remove_run(next_start, next_len);
                new_len += next_len;
            }
        }
        self.insert_run(new_start, new_len);
    }

    fn insert_run(&mut self, start: u64, len: u64) {
        assert!(len > 0 && start >= self.region_start_block && start + len <= self.region_end_block);
        assert!(self.by_start.insert(start, len).is_none());
        assert!(self.by_len.insert((len, start)));
        self.free_blocks += len;
    }

    fn remove_run(&mut self, start: u64, len: u64) {
        assert_eq!(self.by_start.remove(&start), Some(len));
        assert!(self.by_len.remove(&(len, start)));
        self.free_blocks -= len;
    }

    /// Checks both indexes agree and runs are disjoint and coalesced (tests and debugging).
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let mut prev_end: Option<u64> = None;
        let mut total = 0;
        for (&start, &len) in &self.by_start {
            assert!(self.by_len.contains(&(len, start)));
            if let Some(prev_end) = prev_end {
                assert!(start > prev_end, "runs touch or overlap at {start}");
            }
            prev_end = Some(start + len);
            total += len;
        }
        assert_eq!(self.by_len.len(), self.by_start.len());
        assert_eq!(total, self.free_blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn allocations_never_overlap(ops in proptest::collection::vec((1u64..8, any::<bool>()), 1..200)) {
            let mut a = Allocator::new_all_free(100, 64);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (blocks, release) in ops {
                if release && !live.is_empty() {
                    let (s, n) = live.swap_remove(blocks as usize % live.len());
                    a.release(s, n);
                } else if let Some(s) = a.allocate(blocks) {
                    for &(o, m) in &live {
                        prop_assert!(s + blocks <= o || o + m <= s);
                    }
                    prop_assert!(s >= 100 && s + blocks <= 164);
                    live.push((s, blocks));
                }
                a.assert_consistent();
                prop_assert_eq!(a.free_blocks() + live.iter().map(|l| l.1).sum::<u64>(), 64);
            }
            for (s, n) in live {
                a.release(s, n);
            }
            prop_assert_eq!(a.free_blocks(), 64);
            prop_assert_eq!(a.by_start.len(), 1);
        }
    }

    #[test]
    fn reserve_carves_exact_ranges() {
        let mut a = Allocator::new_all_free(10, 20);
        assert!(a.reserve(15, 3));
        assert!(!a.reserve(16, 1));
        assert!(!a.reserve(14, 2));
        assert!(a.reserve(10, 5));
        assert!(!a.reserve(28, 5));
        a.assert_consistent();
        assert_eq!(a.free_blocks(), 12);
        a.release(15, 3);
        a.release(10, 5);
        assert_eq!(a.free_blocks(), 20);
        a.assert_consistent();
    }
}
