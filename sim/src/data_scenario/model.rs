//! What the clients know about their files: the exact bytes every acknowledged write left, and, after an
//! operation whose outcome is unknown, every content the file may now have.

use std::fmt;

/// One file's possible contents. Normally one; an operation with an unknown outcome adds the content
/// it would have made, and a later successful read settles which one is true.
#[derive(Clone, PartialEq, Eq)]
pub struct FileModel {
    candidates: Vec<Vec<u8>>,
}

impl fmt::Debug for FileModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lens: Vec<usize> = self.candidates.iter().map(Vec::len).collect();
        f.debug_struct("FileModel").field("candidate_lens", &lens).finish()
    }
}

/// Most contents a file may be in at once; beyond it the workload stops changing the file until a
/// read settles it.
pub const CANDIDATES_MAX: usize = 8;

impl Default for FileModel {
    fn default() -> FileModel {
        FileModel { candidates: vec![Vec::new()] }
    }
}

impl FileModel {
    pub fn is_certain(&self) -> bool {
        self.candidates.len() == 1
    }

    pub fn is_full(&self) -> bool {
        self.candidates.len() >= CANDIDATES_MAX
    }

    /// The content if certain.
    pub fn content(&self) -> Option<&[u8]> {
        self.is_certain().then(|| self.candidates[0].as_slice())
    }

    /// The largest size any candidate has.
    pub fn size_max(&self) -> u64 {
        self.candidates.iter().map(|c| c.len() as u64).max().unwrap_or(0)
    }

    /// Apply an acknowledged change to every candidate.
    pub fn apply(&mut self, change: &Change) {
        for c in &mut self.candidates {
            change.apply(c);
        }
        self.dedup();
    }

    /// A change that may or may not have happened: every candidate with and without it.
    pub fn apply_maybe(&mut self, change: &Change) {
        let with: Vec<Vec<u8>> = self
            .candidates
            .iter()
            .map(|c| {
                let mut c = c.clone();
                change.apply(&mut c);
                c
            })
            .collect();
        self.candidates.extend(with);
        self.dedup();
    }

    /// A read of `[offset, offset + len)` returned `got`: it must match some candidate; the candidates
    /// it does not match are dropped. `Err` describes a read no candidate explains.
    pub fn observe(&mut self, offset: u64, len: u64, got: &[u8]) -> Result<(), String> {
        let matches = |c: &Vec<u8>| expected(c, offset, len) == got;
        if !self.candidates.iter().any(matches) {
            let first = &self.candidates[0];
            let want = expected(first, offset, len);
            let at = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
            return Err(format!(
                "read [{offset}, +{len}) returned {} bytes, expected {} (of {} candidate contents); first difference at +{at}",
                got.len(),
                want.len(),
                self.candidates.len()
            ));
        }
        self.candidates.retain(matches);
        Ok(())
    }

    fn dedup(&mut self) {
        let mut seen: Vec<Vec<u8>> = Vec::with_capacity(self.candidates.len());
        for c in self.candidates.drain(..) {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        self.candidates = seen;
    }
}

/// The bytes a read of `[offset, offset + len)` returns from `content` (short at the end of file).
pub fn expected(content: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = (offset as usize).min(content.len());
    let end = (offset.saturating_add(len) as usize).min(content.len());
    &content[start..end]
}

/// A change to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Write { offset: u64, bytes: Vec<u8> },
    Truncate { size: u64 },
}

impl Change {
    pub fn apply(&self, content: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => {
                let end = *offset as usize + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[*offset as usize..end].copy_from_slice(bytes);
            }
            Change::Truncate { size } => content.resize(*size as usize, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_extend_with_zeros_and_truncate_cuts() {
        let mut m = FileModel::default();
        m.apply(&Change::Write { offset: 3, bytes: vec![7, 8] });
        assert_eq!(m.content(), Some(&[0, 0, 0, 7, 8][..]));
        m.apply(&Change::Truncate { size: 4 });
        assert_eq!(m.content(), Some(&[0, 0, 0, 7][..]));
    }

    #[test]
    fn an_unknown_outcome_is_settled_by_a_read() {
        let mut m = FileModel::default();
        m.apply(&Change::Write { offset: 0, bytes: vec![1, 2, 3] });
        m.apply_maybe(&Change::Write { offset: 1, bytes: vec![9] });
        assert!(!m.is_certain());
        assert!(m.observe(0, 10, &[1, 5, 3]).is_err(), "no candidate has a 5");
        m.observe(0, 10, &[1, 9, 3]).unwrap();
        assert_eq!(m.content(), Some(&[1, 9, 3][..]));
    }
}
