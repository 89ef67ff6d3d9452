//! One file's write-back buffer: the bytes the kernel wrote that are not yet committed to the cluster,
//! as non-overlapping extents. Pure bookkeeping (no I/O), so it is tested on its own.

use std::collections::BTreeMap;

/// The buffered, uncommitted bytes of one file.
#[derive(Debug, Default)]
pub struct Extents {
    /// Non-overlapping, non-adjacent runs: start offset -> bytes.
    runs: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
}

impl Extents {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The end of the last run (0 if empty).
    pub fn end(&self) -> u64 {
        self.runs.last_key_value().map_or(0, |(&start, run)| start + run.len() as u64)
    }

    /// Puts `data` at `offset`, over whatever was buffered there, merging with runs it overlaps or
    /// touches. Returns how many bytes the buffer grew by (at most `data.len()`).
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> u64 {
        if data.is_empty() {
            return 0;
        }
        let end = offset + data.len() as u64;
        // Runs starting at or before `end` whose end is at or after `offset` overlap or touch.
        let touching: Vec<u64> = self
            .runs
            .range(..=end)
            .rev()
            .take_while(|&(&start, run)| start + run.len() as u64 >= offset)
            .map(|(&start, _)| start)
            .collect();
        let before = self.bytes;
        let mut start = offset;
        let mut stop = end;
        for &s in &touching {
            let run = &self.runs[&s];
            start = start.min(s);
            stop = stop.max(s + run.len() as u64);
        }
        let mut merged = vec![0u8; (stop - start) as usize];
        for s in touching {
            let run = self.runs.remove(&s).expect("listed above");
            self.bytes -= run.len() as u64;
            let at = (s - start) as usize;
            merged[at..at + run.len()].copy_from_slice(&run);
        }
        let at = (offset - start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        self.bytes += merged.len() as u64;
        self.runs.insert(start, merged);
        self.bytes - before
    }

    /// Takes every run (for a flush).
    pub fn take_all(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.bytes = 0;
        std::mem::take(&mut self.runs).into_iter().collect()
    }

    /// Takes, from every run of at least `min_bytes`, its longest prefix that is a whole number of
    /// `stripe_bytes` (full stripes); the rest stays buffered.
    pub fn take_full_stripes(&mut self, min_bytes: u64, stripe_bytes: u64) -> Vec<(u64, Vec<u8>)> {
        assert!(stripe_bytes > 0, "a stripe holds bytes");
        let ready: Vec<u64> = self
            .runs
            .iter()
            .filter(|(_, run)| run.len() as u64 >= min_bytes.max(stripe_bytes))
            .map(|(&s, _)| s)
            .collect();
        let mut out = Vec::with_capacity(ready.len());
        for start in ready {
            let mut run = self.runs.remove(&start).expect("listed above");
            let full = (run.len() as u64 / stripe_bytes * stripe_bytes) as usize;
            let rest = run.split_off(full);
            self.bytes -= run.len() as u64;
            if !rest.is_empty() {
                self.runs.insert(start + full as u64, rest);
            }
            out.push((start, run));
        }
        out
    }

    /// Drops buffered bytes at and beyond `size` (a truncate). Returns the bytes dropped.
    pub fn truncate(&mut self, size: u64) -> u64 {
        let before = self.bytes;
        let starts: Vec<u64> = self.runs.keys().copied().collect();
        for start in starts {
            if start >= size {
                let run = self.runs.remove(&start).expect("listed");
                self.bytes -= run.len() as u64;
            } else if let Some(run) = self.runs.get_mut(&start) {
                let keep = (size - start).min(run.len() as u64) as usize;
                self.bytes -= (run.len() - keep) as u64;
                run.truncate(keep);
            }
        }
        before - self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte array model: what the file would read after the same writes.
    fn model(writes: &[(u64, Vec<u8>)]) -> BTreeMap<u64, u8> {
        let mut m = BTreeMap::new();
        for (off, data) in writes {
            for (i, b) in data.iter().enumerate() {
                m.insert(off + i as u64, *b);
            }
        }
        m
    }

    fn flatten(runs: &[(u64, Vec<u8>)]) -> BTreeMap<u64, u8> {
        model(runs)
    }

    #[test]
    fn overlapping_and_touching_writes_merge_into_what_the_file_would_hold() {
        let writes: Vec<(u64, Vec<u8>)> =
            vec![(10, vec![1; 5]), (20, vec![2; 5]), (15, vec![3; 5]), (12, vec![4; 10]), (100, vec![5; 3])];
        let mut e = Extents::default();
        let mut grew = 0;
        for (off, data) in &writes {
            grew += e.insert(*off, data);
        }
        assert_eq!(e.bytes(), grew);
        assert_eq!(e.bytes(), 15 + 3, "10..25 and 100..103");
        assert_eq!(e.end(), 103);
        assert_eq!(flatten(&e.take_all()), model(&writes));
        assert!(e.is_empty() && e.bytes() == 0);
    }

    #[test]
    fn full_stripes_leave_the_tail_buffered() {
        let mut e = Extents::default();
        e.insert(0, &[7; 10]);
        e.insert(50, &[8; 3]);
        let taken = e.take_full_stripes(8, 4);
        assert_eq!(taken, vec![(0, vec![7; 8])]);
        assert_eq!(e.bytes(), 2 + 3);
        let rest = e.take_all();
        assert_eq!(rest, vec![(8, vec![7; 2]), (50, vec![8; 3])]);
    }

    #[test]
    fn truncate_drops_bytes_beyond_the_size() {
        let mut e = Extents::default();
        e.insert(0, &[1; 10]);
        e.insert(20, &[2; 10]);
        assert_eq!(e.truncate(5), 15);
        assert_eq!(e.take_all(), vec![(0, vec![1; 5])]);
    }
}
