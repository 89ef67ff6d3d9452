//! Sector-aligned byte buffers without `unsafe`, for `O_DIRECT` IO.
//!
//! `O_DIRECT` needs the user buffer, the file offset and the length all aligned to the device's logical
//! block size; we align to [`SECTOR_SIZE_BYTES`] (4 KiB), which covers 512-byte and 4 KiB devices. Safe
//! Rust cannot ask the allocator for a 4 KiB-aligned `Vec<u8>`, so a buffer over-allocates by one sector
//! less one byte and works on the sub-slice that starts at the first aligned address
//! (`as_ptr().align_offset(4096)`). The `Vec` is never grown, so the address never moves.

use tessera_env::SECTOR_SIZE_BYTES;

/// The alignment every `O_DIRECT` buffer gets.
pub(crate) const ALIGN_BYTES: usize = SECTOR_SIZE_BYTES;

/// True if `bytes` starts at an [`ALIGN_BYTES`]-aligned address (its length is checked elsewhere).
pub(crate) fn is_aligned(bytes: &[u8]) -> bool {
    bytes.as_ptr().align_offset(ALIGN_BYTES) == 0
}

/// A zeroed buffer of `len_bytes` whose first byte sits at an [`ALIGN_BYTES`]-aligned address.
#[derive(Debug)]
pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len_bytes: usize,
}

impl AlignedBuf {
    pub(crate) fn new(len_bytes: usize) -> AlignedBuf {
        let storage = vec![0u8; len_bytes + ALIGN_BYTES - 1];
        let start = storage.as_ptr().align_offset(ALIGN_BYTES);
        assert!(start < ALIGN_BYTES, "align_offset gave {start}");
        let buf = AlignedBuf { storage, start, len_bytes };
        assert!(is_aligned(buf.as_slice()));
        buf
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len_bytes]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len_bytes]
    }
}

/// Read `len_bytes` into a fresh `Vec` through an aligned window of it, without a second allocation.
///
/// `fill` is given an aligned slice of exactly `len_bytes`; afterwards the bytes are moved to the front
/// of the allocation (one `memmove`, skipped when the allocation happened to be aligned already) and the
/// `Vec` is truncated to `len_bytes`. Its capacity keeps up to one extra sector.
pub(crate) fn read_into_aligned_vec<E>(
    len_bytes: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut storage = vec![0u8; len_bytes + ALIGN_BYTES - 1];
    let start = storage.as_ptr().align_offset(ALIGN_BYTES);
    assert!(start < ALIGN_BYTES, "align_offset gave {start}");
    let window = &mut storage[start..start + len_bytes];
    assert!(is_aligned(window));
    fill(window)?;
    if start != 0 {
        storage.copy_within(start..start + len_bytes, 0);
    }
    storage.truncate(len_bytes);
    Ok(storage)
}

/// A small stack of reusable aligned bounce buffers of one size, so that steady-state writes of unaligned
/// caller data do not allocate. Bounded: at most [`BufferPool::MAX_IDLE`] idle buffers are kept.
#[derive(Debug)]
pub(crate) struct BufferPool {
    buf_len_bytes: usize,
    idle: std::sync::Mutex<Vec<AlignedBuf>>,
}

impl BufferPool {
    pub(crate) const MAX_IDLE: usize = 8;

    pub(crate) fn new(buf_len_bytes: usize) -> BufferPool {
        assert!(buf_len_bytes > 0 && buf_len_bytes.is_multiple_of(ALIGN_BYTES));
        BufferPool { buf_len_bytes, idle: std::sync::Mutex::new(Vec::new()) }
    }

    pub(crate) fn buf_len_bytes(&self) -> usize {
        self.buf_len_bytes
    }

    pub(crate) fn take(&self) -> AlignedBuf {
        let reused = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        reused.unwrap_or_else(|| AlignedBuf::new(self.buf_len_bytes))
    }

    pub(crate) fn give_back(&self, buf: AlignedBuf) {
        assert_eq!(buf.len_bytes(), self.buf_len_bytes, "foreign buffer returned to pool");
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < Self::MAX_IDLE {
            idle.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_sized() {
        for len in [ALIGN_BYTES, 3 * ALIGN_BYTES, 1 << 20] {
            let mut b = AlignedBuf::new(len);
            assert!(is_aligned(b.as_slice()));
            assert_eq!(b.as_mut_slice().len(), len);
        }
    }

    #[test]
    fn read_into_aligned_vec_moves_bytes_to_front() {
        let v = read_into_aligned_vec::<()>(2 * ALIGN_BYTES, |w| {
            assert!(is_aligned(w));
            for (i, b) in w.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(v.len(), 2 * ALIGN_BYTES);
        assert!(v.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }

    #[test]
    fn pool_reuses_and_stays_bounded() {
        let pool = BufferPool::new(ALIGN_BYTES);
        let bufs: Vec<AlignedBuf> = (0..BufferPool::MAX_IDLE + 3).map(|_| pool.take()).collect();
        for b in bufs {
            pool.give_back(b);
        }
        assert_eq!(pool.idle.lock().unwrap().len(), BufferPool::MAX_IDLE);
        let b = pool.take();
        assert!(is_aligned(b.as_slice()));
    }
}
