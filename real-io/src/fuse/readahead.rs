//! A handle's readahead: the file seen as blocks (1 MiB, or one stripe), each fetched once by a pooled
//! client and shared by every read that needs it. A sequential reader gets a window of blocks fetched
//! ahead of it that doubles up to a maximum; the kernel's own readahead sends several 1 MiB requests at
//! once and out of order, and they all land on blocks already on their way. A random read smaller than a
//! block is read directly (a whole block for 4 KiB would read 256 times too much).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::{BoxFuture, Shared};

use super::convert::Fail;

/// A block being fetched or fetched: its bytes (fewer than a block at the end of the file).
pub type Block = Shared<BoxFuture<'static, Result<Arc<Vec<u8>>, Fail>>>;

/// The first readahead window of a sequential reader, in blocks.
const WINDOW_MIN_BLOCKS: u64 = 2;

#[derive(Default)]
pub struct ReadAhead {
    /// The file's local-change generation these blocks were read at.
    pub generation: u64,
    blocks: BTreeMap<u64, Block>,
    /// The block after the last one a read covered.
    next: u64,
    /// Blocks read ahead of a sequential reader (0: not sequential).
    window: u64,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("blocks", &self.blocks.len())
            .field("next", &self.next)
            .field("window", &self.window)
            .finish()
    }
}

/// How to serve one read.
pub enum Plan {
    /// Read the range directly (random and smaller than a block).
    Direct,
    /// Await these blocks (first to last) and cut the range out of them.
    Blocks { first: u64, blocks: Vec<Block>, sequential: bool },
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plan::Direct => f.write_str("Direct"),
            Plan::Blocks { first, blocks, sequential } => {
                write!(f, "Blocks {{ first: {first}, count: {}, sequential: {sequential} }}", blocks.len())
            }
        }
    }
}

impl ReadAhead {
    /// Drops every block if the file changed here since they were read.
    pub fn check_generation(&mut self, generation: u64) {
        if self.generation != generation {
            *self = ReadAhead { generation, ..ReadAhead::default() };
        }
    }

    /// The plan for `[offset, end)` (`end > offset`); `fetch(b)` starts fetching block `b`.
    pub fn plan(
        &mut self,
        offset: u64,
        end: u64,
        block_bytes: u64,
        window_max_blocks: u64,
        fetch: impl Fn(u64) -> Block,
    ) -> Plan {
        assert!(end > offset && block_bytes > 0, "a read of at least one byte");
        let (first, last) = (offset / block_bytes, (end - 1) / block_bytes);
        // Sequential: at the start of the file, or near where the last read ended (the kernel's
        // requests may arrive out of order within its own readahead).
        let near = window_max_blocks.max(WINDOW_MIN_BLOCKS) + 1;
        let sequential =
            (first == 0 && self.next == 0) || (self.next > 0 && first + near >= self.next && first <= self.next + near);
        self.window = if sequential { (self.window * 2).clamp(WINDOW_MIN_BLOCKS, window_max_blocks.max(1)) } else { 0 };
        self.next = if sequential { self.next.max(last + 1) } else { last + 1 };
        let cached = (first..=last).all(|b| self.blocks.contains_key(&b));
        if !sequential && !cached && end - offset < block_bytes {
            return Plan::Direct;
        }
        // Keep only blocks near the reader (the kernel's requests arrive out of order by up to its own
        // readahead, so on both sides), at most `4 * window_max_blocks + 4` of them: bounded memory.
        let reach = 2 * window_max_blocks + 2;
        let (keep_from, keep_to) = (first.saturating_sub(reach), last + reach);
        self.blocks.retain(|&b, _| b >= keep_from && b <= keep_to);
        let blocks = (first..=last).map(|b| self.blocks.entry(b).or_insert_with(|| fetch(b)).clone()).collect();
        Plan::Blocks { first, blocks, sequential }
    }

    /// Starts fetching the window ahead of block `last` (a sequential reader whose last block was full:
    /// the file goes on).
    pub fn read_ahead(&mut self, last: u64, fetch: impl Fn(u64) -> Block) {
        for b in last + 1..=last + self.window {
            self.blocks.entry(b).or_insert_with(|| fetch(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn block(b: u64, fetched: &std::cell::RefCell<Vec<u64>>) -> Block {
        fetched.borrow_mut().push(b);
        async move { Ok(Arc::new(vec![b as u8; 4])) }.boxed().shared()
    }

    #[test]
    fn out_of_order_sequential_requests_fetch_each_block_once() {
        let fetched = std::cell::RefCell::new(Vec::new());
        let mut ra = ReadAhead::default();
        for b in [0u64, 2, 1, 3, 5, 4, 6, 7] {
            let plan = ra.plan(b * 4, b * 4 + 4, 4, 8, |x| block(x, &fetched));
            let Plan::Blocks { sequential, .. } = plan else { panic!("block {b} read directly") };
            assert!(sequential, "block {b}");
            ra.read_ahead(b, |x| block(x, &fetched));
        }
        let mut all = fetched.borrow().clone();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a block fetched twice: {:?}", fetched.borrow());
    }

    #[test]
    fn small_random_reads_go_direct_and_fetch_no_block() {
        let fetched = std::cell::RefCell::new(Vec::new());
        let mut ra = ReadAhead::default();
        for offset in [40_000u64, 400, 90_000, 200_000] {
            assert!(matches!(ra.plan(offset, offset + 8, 4096, 8, |x| block(x, &fetched)), Plan::Direct));
        }
        assert!(fetched.borrow().is_empty());
    }

    #[test]
    fn a_local_write_drops_the_blocks() {
        let fetched = std::cell::RefCell::new(Vec::new());
        let mut ra = ReadAhead::default();
        ra.plan(0, 4, 4, 8, |x| block(x, &fetched));
        ra.check_generation(1);
        ra.plan(0, 4, 4, 8, |x| block(x, &fetched));
        assert_eq!(*fetched.borrow(), vec![0, 0]);
    }
}
