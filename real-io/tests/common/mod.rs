//! Helpers shared by the multi-process tests: the `tessera` binary, a local cluster on free ports that
//! stops when the test ends, SIGKILL of one node.
#![allow(dead_code)] // each test file uses its own subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tessera_real_io::local::{self, LocalNode};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub fn tessera(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run tessera")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A base port with `count` free ports above it and 100 above that (metrics). Each call (tests run in
/// parallel) starts its search at another place, so two tests do not pick one range.
pub fn free_base_port(count: u16) -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id() % 97) * 509 + call * 1_013;
    (0..200u32)
        .map(|i| (10_000 + (start + i * 211) % 50_000) as u16)
        .find(|&base| {
            (1..=count).all(|i| {
                TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
            })
        })
        .expect("a free port range")
}

/// Stops the cluster when the test ends, pass or fail.
pub struct Down(pub PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = local::stop_all(&self.0, &mut |_| {});
    }
}

pub fn up(dir: &Path, extra: &[&str]) -> Down {
    let base = free_base_port(6).to_string();
    let dir_s = dir.to_str().expect("utf-8 path");
    let mut args = vec!["cluster", "up", "--dir", dir_s, "--base-port", &base, "--no-demo"];
    if !extra.contains(&"--drive-size") {
        args.extend_from_slice(&["--drive-size", "256MiB"]);
    }
    args.extend_from_slice(extra);
    let out = tessera(&args);
    let down = Down(dir.to_path_buf());
    assert!(out.status.success(), "cluster up failed: {}", text(&out));
    down
}

pub fn node(dir: &Path, id: u64) -> LocalNode {
    local::local_nodes(dir).expect("nodes").1.into_iter().find(|n| n.id == id).expect("node")
}

pub fn kill(dir: &Path, id: u64) {
    let n = node(dir, id);
    let pid = local::running_pid(&n).unwrap_or_else(|| panic!("node {id} is not running"));
    local::signal(pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while local::node_process_alive(pid, &n.config) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!local::node_process_alive(pid, &n.config), "node {id} survived SIGKILL");
}
