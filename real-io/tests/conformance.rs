//! The shared disk conformance suite (`tessera_env::conformance`) against [`FileDisk`], in both IO modes.

use futures::executor::block_on;
use tessera_env::Disk;
use tessera_env::conformance::{check_all, check_flushed_survives_reopen};
use tessera_real_io::{FileDisk, IoMode};

const CAPACITY_BYTES: u64 = 1 << 20;

fn run_suite(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk");
    let disk = FileDisk::create_with(&path, CAPACITY_BYTES, mode).unwrap();
    if mode == IoMode::Buffered {
        assert!(!disk.is_direct());
    }
    eprintln!("{mode:?}: direct = {}", disk.is_direct());
    block_on(check_all(&disk)).unwrap_or_else(|v| panic!("{v}"));
    let reopen = move |disk: FileDisk| {
        let path = disk.path().to_path_buf();
        drop(disk);
        FileDisk::open_with(&path, mode).unwrap()
    };
    let disk = block_on(check_flushed_survives_reopen(disk, reopen)).unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(disk.capacity_bytes(), CAPACITY_BYTES);
    // The suite again on the reopened device.
    block_on(check_all(&disk)).unwrap_or_else(|v| panic!("{v}"));
}

#[test]
fn conformance_direct_if_supported() {
    run_suite(IoMode::DirectIfSupported);
}

#[test]
fn conformance_buffered() {
    run_suite(IoMode::Buffered);
}
