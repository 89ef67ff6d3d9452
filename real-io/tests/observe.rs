//! Observability as an operator sees it: what `render()` and `GET /metrics` show after disk IO,
//! operations and samples; the endpoint's errors; logging setup.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::executor::block_on;
use tessera_env::{Disk, DiskError, SECTOR_SIZE_BYTES};
use tessera_real_io::observe::{
    MeteredDisk, Metrics, NetSample, NodeSample, OPENMETRICS_CONTENT_TYPE, ObserveError, init_logging, serve_metrics,
};
use tessera_real_io::{FileDisk, IoMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;

/// The value of the sample `name` whose labels include every pair of `labels`, if exactly one matches.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').expect("labels end in }"))),
            None => (series, BTreeMap::new()),
        };
        if series_name == name && labels.iter().all(|(k, v)| series_labels.get(*k).map(String::as_str) == Some(*v)) {
            found.push(value.parse::<f64>().expect("numeric value"));
        }
    }
    assert!(found.len() <= 1, "{name} {labels:?} matches {} samples in\n{text}", found.len());
    found.pop()
}

/// `a="x",b="y"` (values here never contain quotes or commas).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("label pair");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

fn file_disk(dir: &tempfile::TempDir, sectors: u64) -> FileDisk {
    FileDisk::create_with(dir.path().join("disk"), sectors * SECTOR, IoMode::Buffered).unwrap()
}

#[test]
fn metered_disk_counts_ops_and_bytes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new("n3");
    let disk = MeteredDisk::new(file_disk(&dir, 64), metrics.disk("data0"));
    assert_eq!(disk.capacity_bytes(), 64 * SECTOR);

    let data: Vec<u8> = (0..3 * SECTOR_SIZE_BYTES).map(|i| (i % 251) as u8).collect();
    block_on(disk.write(0, &data)).unwrap();
    block_on(disk.write(8 * SECTOR, &data[..SECTOR_SIZE_BYTES])).unwrap();
    block_on(disk.flush()).unwrap();
    // Reads return what was written: the wrapper forwards unchanged.
    assert_eq!(block_on(disk.read(0, 3 * SECTOR_SIZE_BYTES)).unwrap(), data);
    assert_eq!(block_on(disk.read(8 * SECTOR, SECTOR_SIZE_BYTES)).unwrap(), data[..SECTOR_SIZE_BYTES]);
    block_on(disk.read(20 * SECTOR, 2 * SECTOR_SIZE_BYTES)).unwrap();

    let text = metrics.render();
    let d = |op| [("node", "n3"), ("drive", "data0"), ("op", op)];
    assert_eq!(sample(&text, "tessera_disk_ops_total", &d("write")), Some(2.0));
    assert_eq!(sample(&text, "tessera_disk_ops_total", &d("flush")), Some(1.0));
    assert_eq!(sample(&text, "tessera_disk_ops_total", &d("read")), Some(3.0));
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &d("write")), Some(4.0 * SECTOR as f64));
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &d("read")), Some(6.0 * SECTOR as f64));
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &d("flush")), None, "a flush has no bytes series");
    assert_eq!(sample(&text, "tessera_disk_op_duration_seconds_count", &d("read")), Some(3.0));
    assert_eq!(sample(&text, "tessera_disk_op_duration_seconds_count", &d("flush")), Some(1.0));
    assert_eq!(sample(&text, "tessera_disk_op_duration_seconds_bucket", &[("op", "read"), ("le", "+Inf")]), Some(3.0));
    assert_eq!(
        sample(&text, "tessera_disk_capacity_bytes", &[("node", "n3"), ("drive", "data0")]),
        Some(64.0 * SECTOR as f64)
    );
    for op in ["read", "write", "flush"] {
        assert_eq!(sample(&text, "tessera_disk_errors_total", &[("op", op), ("kind", "unaligned")]), Some(0.0));
    }
}

#[test]
fn metered_disk_passes_errors_through_and_counts_them_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new("n1");
    let disk = MeteredDisk::new(file_disk(&dir, 16), metrics.disk("meta"));

    let unaligned_write = block_on(disk.write(100, &[0u8; SECTOR_SIZE_BYTES]));
    assert_eq!(unaligned_write, Err(DiskError::Unaligned { offset_bytes: 100, len_bytes: SECTOR }));
    let unaligned_read = block_on(disk.read(0, 10));
    assert_eq!(unaligned_read, Err(DiskError::Unaligned { offset_bytes: 0, len_bytes: 10 }));
    let past_end = block_on(disk.read(16 * SECTOR, SECTOR_SIZE_BYTES));
    assert_eq!(
        past_end,
        Err(DiskError::OutOfRange { offset_bytes: 16 * SECTOR, len_bytes: SECTOR, capacity_bytes: 16 * SECTOR })
    );
    // A bad call does not fence the inner disk: a good one still works and counts bytes.
    block_on(disk.write(SECTOR, &[7u8; SECTOR_SIZE_BYTES])).unwrap();

    let text = metrics.render();
    let e = |op, kind| [("drive", "meta"), ("op", op), ("kind", kind)];
    assert_eq!(sample(&text, "tessera_disk_errors_total", &e("write", "unaligned")), Some(1.0));
    assert_eq!(sample(&text, "tessera_disk_errors_total", &e("read", "unaligned")), Some(1.0));
    assert_eq!(sample(&text, "tessera_disk_errors_total", &e("read", "out_of_range")), Some(1.0));
    assert_eq!(sample(&text, "tessera_disk_errors_total", &e("write", "write_failed")), Some(0.0));
    // Failed calls are ops too (errors are a subset), but move no bytes.
    assert_eq!(sample(&text, "tessera_disk_ops_total", &[("drive", "meta"), ("op", "write")]), Some(2.0));
    assert_eq!(sample(&text, "tessera_disk_ops_total", &[("drive", "meta"), ("op", "read")]), Some(2.0));
    assert_eq!(
        sample(&text, "tessera_disk_io_bytes_total", &[("drive", "meta"), ("op", "write")]),
        Some(SECTOR as f64)
    );
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &[("drive", "meta"), ("op", "read")]), Some(0.0));
}

#[test]
fn two_drives_have_separate_series() {
    let metrics = Metrics::new("n2");
    let a = metrics.disk("data0");
    let b = metrics.disk("data1");
    a.record_ok(tessera_real_io::observe::DiskOp::Write, 4096, 1_000);
    b.record_ok(tessera_real_io::observe::DiskOp::Write, 8192, 1_000);
    // A second handle to one drive adds to the same series.
    metrics.disk("data0").record_ok(tessera_real_io::observe::DiskOp::Write, 4096, 1_000);
    let text = metrics.render();
    let w = |drive| [("drive", drive), ("op", "write")];
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &w("data0")), Some(8192.0));
    assert_eq!(sample(&text, "tessera_disk_io_bytes_total", &w("data1")), Some(8192.0));
    assert_eq!(sample(&text, "tessera_disk_ops_total", &w("data0")), Some(2.0));
}

#[test]
fn record_op_counts_by_result_and_buckets_latency_in_seconds() {
    let metrics = Metrics::new("client");
    metrics.record_op("client", "put", true, 200_000); // 200 us
    metrics.record_op("client", "put", true, 3_000_000); // 3 ms
    metrics.record_op("client", "put", false, 40_000_000_000); // 40 s: beyond the last bucket
    metrics.record_op("s3", "get", true, 10_000);

    let text = metrics.render();
    let op = |service, op| [("node", "client"), ("service", service), ("op", op)];
    let put = |result| [("service", "client"), ("op", "put"), ("result", result)];
    assert_eq!(sample(&text, "tessera_ops_total", &put("ok")), Some(2.0));
    assert_eq!(sample(&text, "tessera_ops_total", &put("error")), Some(1.0));
    assert_eq!(sample(&text, "tessera_ops_total", &[("service", "s3"), ("op", "get"), ("result", "ok")]), Some(1.0));
    assert_eq!(sample(&text, "tessera_op_duration_seconds_count", &op("client", "put")), Some(3.0));
    let sum = sample(&text, "tessera_op_duration_seconds_sum", &op("client", "put")).unwrap();
    assert!((sum - 40.0032).abs() < 1e-9, "sum {sum}");
    let bucket = |le| sample(&text, "tessera_op_duration_seconds_bucket", &[("service", "client"), ("le", le)]);
    // Buckets are cumulative: 50 us holds none, 250 us the first, 5 ms two, 30 s still two, +Inf all three.
    assert_eq!(bucket("0.00005"), Some(0.0), "{text}");
    assert_eq!(bucket("0.00025"), Some(1.0), "{text}");
    assert_eq!(bucket("0.005"), Some(2.0));
    assert_eq!(bucket("30.0"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert!(text.contains("# TYPE tessera_op_duration_seconds histogram"), "{text}");
    assert!(text.contains("# UNIT tessera_op_duration_seconds seconds"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn samples_are_copied_into_their_series() {
    let metrics = Metrics::new("n3");
    let text = metrics.render();
    // Before the first sample everything exists at zero.
    assert_eq!(sample(&text, "tessera_net_sent_bytes_total", &[("node", "n3")]), Some(0.0));
    assert_eq!(sample(&text, "tessera_peers_up", &[]), Some(0.0));

    let net = NetSample {
        bytes_sent: 1_000_000,
        bytes_received: 2_000_000,
        frames_sent: 11,
        frames_received: 12,
        frames_rejected: 3,
        connections_open: 4,
        connects_total: 5,
        connect_failures_total: 6,
        messages_dropped_total: 7,
        send_queue_messages: 8,
        send_queue_bytes: 9,
        hello_rejected_total: 10,
    };
    let node = NodeSample {
        shards_hosted: 21,
        shards_led: 22,
        chunks_stored: 23,
        data_bytes_used: 24,
        data_bytes_capacity: 25,
        drives_failed: 1,
        repair_queue_depth: 27,
        rebuild_stripes_done: 28,
        rebuild_bytes_done: 29,
        rebuild_idle: true,
        rebuild_passes: 30,
        peers_up: 2,
        peers_down: 1,
    };
    metrics.update_net(&net);
    metrics.update_node(&node);
    // A later sample replaces the earlier one (values are copies, not increments).
    let net2 = NetSample { bytes_sent: 1_500_000, ..net.clone() };
    metrics.update_net(&net2);
    metrics.update_node(&NodeSample { rebuild_idle: false, ..node.clone() });

    let text = metrics.render();
    let expected = [
        ("tessera_net_sent_bytes_total", 1_500_000.0),
        ("tessera_net_received_bytes_total", 2_000_000.0),
        ("tessera_net_frames_sent_total", 11.0),
        ("tessera_net_frames_received_total", 12.0),
        ("tessera_net_frames_rejected_total", 3.0),
        ("tessera_net_connections_open", 4.0),
        ("tessera_net_connects_total", 5.0),
        ("tessera_net_connect_failures_total", 6.0),
        ("tessera_net_messages_dropped_total", 7.0),
        ("tessera_net_send_queue_messages", 8.0),
        ("tessera_net_send_queue_bytes", 9.0),
        ("tessera_shards_hosted", 21.0),
        ("tessera_shards_led", 22.0),
        ("tessera_chunks_stored", 23.0),
        ("tessera_data_used_bytes", 24.0),
        ("tessera_data_capacity_bytes", 25.0),
        ("tessera_drives_failed", 1.0),
        ("tessera_repair_queue_depth", 27.0),
        ("tessera_rebuild_stripes_total", 28.0),
        ("tessera_rebuild_bytes_total", 29.0),
        ("tessera_rebuild_idle", 0.0),
        ("tessera_rebuild_passes_total", 30.0),
        ("tessera_peers_up", 2.0),
        ("tessera_peers_down", 1.0),
    ];
    for (name, value) in expected {
        assert_eq!(sample(&text, name, &[("node", "n3")]), Some(value), "{name} in\n{text}");
    }
    assert!(text.contains("# TYPE tessera_net_sent_bytes counter"), "{text}");
    assert!(text.contains("# TYPE tessera_peers_up gauge"), "{text}");
}

/// GET `path` over a plain TCP connection; returns the status line, the headers and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut response))
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_ascii_lowercase(), body.to_string())
}

/// The body as sent with `Transfer-Encoding: chunked` or plain, decoded.
fn dechunk(headers: &str, body: &str) -> String {
    if !headers.contains("transfer-encoding: chunked") {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

#[tokio::test]
async fn metrics_endpoint_serves_metrics_and_health() {
    let metrics = Metrics::new("n7");
    let server = serve_metrics("127.0.0.1:0", metrics.clone()).await.unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    metrics.record_op("meta", "lookup", true, 1_000_000);

    let (status, headers, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")), "{headers}");
    let body = dechunk(&headers, &body);
    let labels = [("node", "n7"), ("service", "meta"), ("op", "lookup"), ("result", "ok")];
    assert_eq!(sample(&body, "tessera_ops_total", &labels), Some(1.0), "{body}");
    assert!(body.ends_with("# EOF\n"));

    // Each scrape renders afresh.
    metrics.record_op("meta", "lookup", true, 1_000_000);
    let (_, headers, body) = http_get(addr, "/metrics").await;
    assert_eq!(sample(&dechunk(&headers, &body), "tessera_ops_total", &labels), Some(2.0));

    let (status, headers, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(dechunk(&headers, &body), "ok");

    let (status, _, _) = http_get(addr, "/nothing-here").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    server.shutdown().await;
    // Stopped: the port no longer accepts connections.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = serve_metrics("127.0.0.1:0", Metrics::new("n1")).await.unwrap();
    let addr = server.local_addr();
    server.stop();
    // The listener closes once the server task has run; give it a bounded number of chances.
    let mut refused = false;
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the metrics port still accepts connections after stop()");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let err = serve_metrics(&listen, Metrics::new("n1")).await.unwrap_err();
    assert!(matches!(&err, ObserveError::AddressInUse { listen: l } if *l == listen), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&listen) && message.contains("already in use"), "{message}");

    let err = serve_metrics("not-an-address", Metrics::new("n1")).await.unwrap_err();
    assert!(matches!(&err, ObserveError::Bind { listen, .. } if listen == "not-an-address"), "{err:?}");
}

#[test]
fn init_logging_rejects_a_bad_directive() {
    let err = init_logging("tessera=loudest", None).unwrap_err();
    assert!(matches!(&err, ObserveError::BadLogFilter { directive, .. } if directive == "tessera=loudest"), "{err:?}");
    assert!(err.to_string().contains("tessera=loudest"), "{err}");
}

/// The only test in this binary that installs the logger (it is process-wide).
#[test]
fn init_logging_writes_to_the_file_and_refuses_a_second_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.log");
    init_logging("info", Some(&path)).unwrap();
    tracing::info!(drive = "data0", bytes = 4096_u64, "observe test event");
    tracing::debug!("below the level, not written");

    let log = std::fs::read_to_string(&path).unwrap();
    let line = log.lines().find(|l| l.contains("observe test event")).unwrap_or_else(|| panic!("no event in {log:?}"));
    assert!(line.contains("INFO") && line.contains("drive=\"data0\"") && line.contains("bytes=4096"), "{line}");
    assert!(!log.contains("below the level"), "{log}");

    let err = init_logging("info", None).unwrap_err();
    assert!(matches!(err, ObserveError::LoggingAlreadyInitialized { .. }), "{err:?}");
}
