//! [`FileDisk`]: a [`Disk`] over a regular file or a block device.
//!
//! IO goes straight to the kernel with `pread`/`pwrite` ([`FileExt::read_exact_at`] /
//! [`FileExt::write_all_at`]) on a file opened with `O_DIRECT` where the file system accepts it, so the page
//! cache neither hides nor doubles our IO; `flush` is `fdatasync`. On a file system that refuses `O_DIRECT`
//! (tmpfs on older kernels, some FUSE or overlay setups) the disk falls back to buffered IO, where the
//! same `fdatasync` still gives the durability the [`Disk`] contract promises; [`FileDisk::is_direct`]
//! says which one is in use.
//!
//! **Blocking.** The async methods run their syscall inline on the calling task: they never yield. That is
//! correct but stalls an executor thread for the duration of the IO. A later change moves the syscalls to
//! a blocking pool (or io_uring) under tokio; callers must not rely on either behaviour.
//!
//! **Failure.** A failed write or flush fences the device (the PostgreSQL fsync lesson: after a failed
//! `fsync` the kernel may have dropped the dirty pages and cleared the error, so a retry can "succeed"
//! over lost data). Every later call returns [`DiskError::Fenced`] until the device is opened anew by the
//! repair path. A failed read is reported as [`DiskError::ReadFailed`] and does not fence.
//!
//! **Exclusivity.** The file is locked with an advisory exclusive lock (`flock`) while a [`FileDisk`] holds
//! it, so two processes cannot both write one device through this type.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_env::{Disk, DiskError, SECTOR_SIZE_BYTES, check_io_range};

use crate::aligned::{self, AlignedBuf, BufferPool};

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;

/// The smallest device a [`FileDisk`] accepts: 16 sectors (what the conformance suite needs; any real
/// store is far larger).
pub const MIN_CAPACITY_BYTES: u64 = 16 * SECTOR;

/// Size of the aligned bounce buffers used to write caller data that is not 4 KiB-aligned in memory under
/// `O_DIRECT`. Larger writes go out in chunks of this size.
const BOUNCE_BUFFER_BYTES: usize = 1 << 20;
const _: () = assert!(BOUNCE_BUFFER_BYTES.is_multiple_of(SECTOR_SIZE_BYTES));

/// How a [`FileDisk`] talks to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// `O_DIRECT` if the file system accepts it (checked by opening and reading one sector), else buffered.
    #[default]
    DirectIfSupported,
    /// Always through the page cache (still `fdatasync` on flush). For tests and for file systems where
    /// `O_DIRECT` misbehaves.
    Buffered,
}

/// Why a [`FileDisk`] could not be created or opened. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileDiskError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: permission denied", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("{}: already exists; refusing to create a disk over it (open it instead)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{}: {size_bytes} bytes is smaller than the minimum disk of {MIN_CAPACITY_BYTES} bytes", path.display())]
    TooSmall { path: PathBuf, size_bytes: u64 },
    #[error("{}: capacity {capacity_bytes} bytes is not a multiple of {SECTOR_SIZE_BYTES} bytes", path.display())]
    UnalignedCapacity { path: PathBuf, capacity_bytes: u64 },
    #[error("{}: in use by another process (exclusive lock held)", path.display())]
    Locked { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FileDiskError {
    fn from_io(path: &Path, source: io::Error) -> FileDiskError {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound => FileDiskError::NotFound { path },
            io::ErrorKind::PermissionDenied => FileDiskError::PermissionDenied { path },
            io::ErrorKind::AlreadyExists => FileDiskError::AlreadyExists { path },
            _ => FileDiskError::Io { path, source },
        }
    }
}

/// A [`Disk`] over a regular file or a block device. See the module docs for IO mode, blocking and
/// failure behaviour.
pub struct FileDisk {
    file: File,
    path: PathBuf,
    capacity_bytes: u64,
    direct: bool,
    fenced: AtomicBool,
    /// What fenced the device, for operators (the [`DiskError`] itself carries no OS error).
    fence_cause: Mutex<Option<String>>,
    bounce: BufferPool,
}

impl fmt::Debug for FileDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDisk")
            .field("path", &self.path)
            .field("capacity_bytes", &self.capacity_bytes)
            .field("direct", &self.direct)
            .field("fenced", &self.is_fenced())
            .finish_non_exhaustive()
    }
}

impl FileDisk {
    /// Create a new file of exactly `capacity_bytes` (a multiple of 4 KiB, at least
    /// [`MIN_CAPACITY_BYTES`]) and open it as a disk, `O_DIRECT` if supported. Fails with
    /// [`FileDiskError::AlreadyExists`] if anything exists at `path`: an existing disk is never resized or
    /// overwritten by `create`; use [`FileDisk::open`]. The file is sparse (never-written sectors read as
    /// zeros); its size and directory entry are made durable before this returns.
    pub fn create(path: impl AsRef<Path>, capacity_bytes: u64) -> Result<FileDisk, FileDiskError> {
        FileDisk::create_with(path, capacity_bytes, IoMode::default())
    }

    /// [`FileDisk::create`] with an explicit [`IoMode`].
    pub fn create_with(path: impl AsRef<Path>, capacity_bytes: u64, mode: IoMode) -> Result<FileDisk, FileDiskError> {
        let path = path.as_ref();
        if !capacity_bytes.is_multiple_of(SECTOR) {
            return Err(FileDiskError::UnalignedCapacity { path: path.to_path_buf(), capacity_bytes });
        }
        if capacity_bytes < MIN_CAPACITY_BYTES {
            return Err(FileDiskError::TooSmall { path: path.to_path_buf(), size_bytes: capacity_bytes });
        }
        let file =
            OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| FileDiskError::from_io(path, e))?;
        let sized = file.set_len(capacity_bytes).and_then(|()| file.sync_all()).and_then(|()| sync_parent_dir(path));
        drop(file);
        if let Err(e) = sized {
            // Best effort: do not leave a half-made disk that blocks a retry with AlreadyExists.
            let _ = std::fs::remove_file(path);
            return Err(FileDiskError::Io { path: path.to_path_buf(), source: e });
        }
        FileDisk::open_with(path, mode)
    }

    /// Open an existing file or block device as a disk, `O_DIRECT` if supported. Its capacity is its size
    /// rounded down to a multiple of 4 KiB; it must be at least [`MIN_CAPACITY_BYTES`].
    pub fn open(path: impl AsRef<Path>) -> Result<FileDisk, FileDiskError> {
        FileDisk::open_with(path, IoMode::default())
    }

    /// [`FileDisk::open`] with an explicit [`IoMode`].
    pub fn open_with(path: impl AsRef<Path>, mode: IoMode) -> Result<FileDisk, FileDiskError> {
        let path = path.as_ref();
        let (file, direct) = match mode {
            IoMode::Buffered => (open_rw(path, false)?, false),
            IoMode::DirectIfSupported => match open_rw(path, true) {
                Ok(file) if direct_io_works(&file) => (file, true),
                // Opened, but the file system rejects aligned O_DIRECT IO: reopen buffered.
                Ok(_) => (open_rw(path, false)?, false),
                Err(FileDiskError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                    (open_rw(path, false)?, false)
                }
                Err(e) => return Err(e),
            },
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(FileDiskError::Locked { path: path.to_path_buf() }),
            Err(TryLockError::Error(e)) => return Err(FileDiskError::from_io(path, e)),
        }
        // Seeking to the end gives the size of block devices too (their metadata length is 0).
        let size_bytes = (&file).seek(SeekFrom::End(0)).map_err(|e| FileDiskError::from_io(path, e))?;
        let capacity_bytes = size_bytes - size_bytes % SECTOR;
        if capacity_bytes < MIN_CAPACITY_BYTES {
            return Err(FileDiskError::TooSmall { path: path.to_path_buf(), size_bytes });
        }
        Ok(FileDisk::from_parts(file, path.to_path_buf(), capacity_bytes, direct))
    }

    fn from_parts(file: File, path: PathBuf, capacity_bytes: u64, direct: bool) -> FileDisk {
        assert!(capacity_bytes.is_multiple_of(SECTOR) && capacity_bytes >= MIN_CAPACITY_BYTES);
        FileDisk {
            file,
            path,
            capacity_bytes,
            direct,
            fenced: AtomicBool::new(false),
            fence_cause: Mutex::new(None),
            bounce: BufferPool::new(BOUNCE_BUFFER_BYTES),
        }
    }

    /// True if IO bypasses the page cache (`O_DIRECT`).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once a write or flush has failed; every call then returns [`DiskError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// The OS error that fenced the device, if it is fenced.
    pub fn fence_cause(&self) -> Option<String> {
        self.fence_cause.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn check_not_fenced(&self) -> Result<(), DiskError> {
        if self.is_fenced() { Err(DiskError::Fenced) } else { Ok(()) }
    }

    /// Fence the device after a failed write or flush and return the error to report.
    fn fence(&self, offset_bytes: u64, what: &str, cause: &io::Error) -> DiskError {
        let mut slot = self.fence_cause.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(format!("{what} at offset {offset_bytes} on {}: {cause}", self.path.display()));
        }
        self.fenced.store(true, Ordering::Release);
        DiskError::WriteFailed { offset_bytes }
    }

    fn read_blocking(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        self.check_not_fenced()?;
        check_io_range(offset_bytes, len_bytes as u64, self.capacity_bytes)?;
        let result = if self.direct {
            aligned::read_into_aligned_vec(len_bytes, |window| self.file.read_exact_at(window, offset_bytes))
        } else {
            let mut buf = vec![0u8; len_bytes];
            self.file.read_exact_at(&mut buf, offset_bytes).map(|()| buf)
        };
        // Includes UnexpectedEof: the file shrank under us, which for a disk is an unreadable medium.
        result.map_err(|_| DiskError::ReadFailed { offset_bytes })
    }

    fn write_blocking(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        self.check_not_fenced()?;
        check_io_range(offset_bytes, data.len() as u64, self.capacity_bytes)?;
        let result = if !self.direct || aligned::is_aligned(data) {
            self.file.write_all_at(data, offset_bytes)
        } else {
            self.write_bounced(offset_bytes, data)
        };
        result.map_err(|e| self.fence(offset_bytes, "write", &e))
    }

    /// Under `O_DIRECT`, copy unaligned caller memory through aligned bounce buffers.
    fn write_bounced(&self, offset_bytes: u64, data: &[u8]) -> io::Result<()> {
        let mut bounce: AlignedBuf = self.bounce.take();
        let mut result = Ok(());
        for (i, chunk) in data.chunks(self.bounce.buf_len_bytes()).enumerate() {
            assert!(chunk.len().is_multiple_of(SECTOR_SIZE_BYTES));
            let window = &mut bounce.as_mut_slice()[..chunk.len()];
            window.copy_from_slice(chunk);
            let chunk_offset = offset_bytes + (i * self.bounce.buf_len_bytes()) as u64;
            result = self.file.write_all_at(window, chunk_offset);
            if result.is_err() {
                break;
            }
        }
        self.bounce.give_back(bounce);
        result
    }

    fn flush_blocking(&self) -> Result<(), DiskError> {
        self.check_not_fenced()?;
        // A flush has no offset of its own; it reports offset 0.
        self.file.sync_data().map_err(|e| self.fence(0, "flush (fdatasync)", &e))
    }
}

impl Disk for FileDisk {
    fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    async fn read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        self.read_blocking(offset_bytes, len_bytes)
    }

    async fn write(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        self.write_blocking(offset_bytes, data)
    }

    async fn flush(&self) -> Result<(), DiskError> {
        self.flush_blocking()
    }
}

fn open_rw(path: &Path, direct: bool) -> Result<File, FileDiskError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path).map_err(|e| FileDiskError::from_io(path, e))
}

/// Whether aligned `O_DIRECT` reads work on this open file: some file systems accept the flag at open
/// and reject the IO with `EINVAL`. Any other error (say a bad first sector) is not the file system's
/// verdict on `O_DIRECT`, so it counts as "works".
fn direct_io_works(file: &File) -> bool {
    let mut probe = AlignedBuf::new(SECTOR_SIZE_BYTES);
    match file.read_at(probe.as_mut_slice(), 0) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EINVAL),
    }
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    //! Fencing needs a write and a flush that really fail. `/dev/full` gives both from the kernel
    //! (`pwrite` → ENOSPC, `fdatasync` → EINVAL), but its size reads as 0, so these tests build the
    //! disk with [`FileDisk::from_parts`] and a made-up capacity. That constructor is private, hence these
    //! tests live here rather than in `tests/`.
    use super::*;
    use futures::executor::block_on;

    fn dev_full() -> FileDisk {
        let file = OpenOptions::new().read(true).write(true).open("/dev/full").expect("/dev/full");
        FileDisk::from_parts(file, PathBuf::from("/dev/full"), 64 * SECTOR, false)
    }

    #[test]
    fn failed_write_fences_the_device() {
        let disk = dev_full();
        assert!(!disk.is_fenced());
        // Reads of /dev/full succeed (zeros): the device starts healthy.
        assert_eq!(block_on(disk.read(0, SECTOR_SIZE_BYTES)).unwrap(), vec![0u8; SECTOR_SIZE_BYTES]);
        let err = block_on(disk.write(2 * SECTOR, &[1u8; SECTOR_SIZE_BYTES])).unwrap_err();
        assert_eq!(err, DiskError::WriteFailed { offset_bytes: 2 * SECTOR });
        assert!(err.is_fatal());
        assert!(disk.is_fenced());
        assert!(disk.fence_cause().unwrap().contains("write at offset 8192"), "{:?}", disk.fence_cause());
        // Everything afterwards is Fenced: reads, writes (even ones that would be rejected as bad
        // input), flushes.
        assert_eq!(block_on(disk.read(0, SECTOR_SIZE_BYTES)), Err(DiskError::Fenced));
        assert_eq!(block_on(disk.write(0, &[0u8; SECTOR_SIZE_BYTES])), Err(DiskError::Fenced));
        assert_eq!(block_on(disk.write(1, &[0u8; 10])), Err(DiskError::Fenced));
        assert_eq!(block_on(disk.flush()), Err(DiskError::Fenced));
    }

    #[test]
    fn failed_flush_fences_the_device() {
        let disk = dev_full();
        assert_eq!(block_on(disk.flush()), Err(DiskError::WriteFailed { offset_bytes: 0 }));
        assert!(disk.is_fenced());
        assert_eq!(block_on(disk.read(0, SECTOR_SIZE_BYTES)), Err(DiskError::Fenced));
        assert_eq!(block_on(disk.flush()), Err(DiskError::Fenced));
    }

    #[test]
    fn bad_input_does_not_fence() {
        let disk = dev_full();
        assert!(matches!(block_on(disk.write(1, &[0u8; SECTOR_SIZE_BYTES])), Err(DiskError::Unaligned { .. })));
        assert!(matches!(
            block_on(disk.write(64 * SECTOR, &[0u8; SECTOR_SIZE_BYTES])),
            Err(DiskError::OutOfRange { .. })
        ));
        assert!(!disk.is_fenced());
    }

    #[test]
    fn failed_read_reports_read_failed_and_does_not_fence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wo");
        std::fs::write(&path, vec![0u8; 64 * SECTOR_SIZE_BYTES]).unwrap();
        // Write-only descriptor: pread fails with EBADF, a real kernel read error.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let disk = FileDisk::from_parts(file, path, 64 * SECTOR, false);
        assert_eq!(
            block_on(disk.read(3 * SECTOR, SECTOR_SIZE_BYTES)),
            Err(DiskError::ReadFailed { offset_bytes: 3 * SECTOR })
        );
        assert!(!disk.is_fenced());
        block_on(disk.write(0, &[5u8; SECTOR_SIZE_BYTES])).unwrap();
        block_on(disk.flush()).unwrap();
    }
}
