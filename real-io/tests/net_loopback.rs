//! The TCP transport over real loopback sockets (127.0.0.1, ports picked by the OS).

use std::time::Duration;

use tessera_env::{MAX_MESSAGE_BYTES, Net, NetError, NodeId};
use tessera_real_io::{TcpNet, Transport, TransportConfig, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Long enough for anything on loopback; only reached when a test is about to fail.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a test watches for a message that must not arrive.
const QUIET: Duration = Duration::from_millis(500);

fn data(n: u64) -> NodeId {
    NodeId(n | 1 << 62)
}
fn rebuilder(n: u64) -> NodeId {
    NodeId(n | 1 << 61)
}
fn other(n: u64) -> NodeId {
    NodeId(n | 1 << 60)
}

fn config(cluster_id: Option<u128>) -> TransportConfig {
    TransportConfig {
        cluster_id,
        connect_timeout_ms: 2_000,
        backoff_ms_min: 10,
        backoff_ms_max: 200,
        ..Default::default()
    }
}

async fn node(id: u64, cluster_id: Option<u128>) -> Transport {
    Transport::start(NodeId(id), Some("127.0.0.1:0"), config(cluster_id)).await.expect("start node")
}

fn address(transport: &Transport) -> String {
    transport.local_addr().expect("listening").to_string()
}

async fn recv(net: &TcpNet) -> (NodeId, Vec<u8>) {
    tokio::time::timeout(PATIENCE, net.recv()).await.expect("a message within the patience").expect("endpoint open")
}

async fn assert_quiet(net: &TcpNet) {
    if let Ok(message) = tokio::time::timeout(QUIET, net.recv()).await {
        panic!("nothing should arrive at {}, got {message:?}", net.local_id());
    }
}

/// Poll `condition` until it holds (or fail after the patience).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_between_several_endpoints() {
    let a = node(1, Some(9)).await;
    let b = node(2, Some(9)).await;
    a.set_peer_address(NodeId(2), &address(&b)).expect("address");
    b.set_peer_address(NodeId(1), &address(&a)).expect("address");
    let ids = |n| [data(n), rebuilder(n), other(n)];
    let a_eps: Vec<TcpNet> = ids(1).iter().map(|&id| a.endpoint(id).expect("endpoint")).collect();
    let b_eps: Vec<TcpNet> = ids(2).iter().map(|&id| b.endpoint(id).expect("endpoint")).collect();

    for (senders, receivers) in [(&a_eps, &b_eps), (&b_eps, &a_eps)] {
        for sender in senders.iter() {
            for receiver in receivers.iter() {
                let text = format!("{} -> {}", sender.local_id(), receiver.local_id());
                sender.send(receiver.local_id(), text.into_bytes()).await.expect("send");
            }
        }
    }
    for (receivers, senders) in [(&b_eps, &a_eps), (&a_eps, &b_eps)] {
        for receiver in receivers.iter() {
            let mut got = Vec::new();
            for _ in 0..senders.len() {
                let (from, payload) = recv(receiver).await;
                got.push((from, String::from_utf8(payload).expect("utf8")));
            }
            got.sort();
            let mut want: Vec<(NodeId, String)> = senders
                .iter()
                .map(|s| (s.local_id(), format!("{} -> {}", s.local_id(), receiver.local_id())))
                .collect();
            want.sort();
            assert_eq!(got, want, "at {}", receiver.local_id());
        }
    }
    // Also within one process: no TCP, same semantics.
    a_eps[0].send(other(1), b"local".to_vec()).await.expect("local send");
    assert_eq!(recv(&a_eps[2]).await, (data(1), b"local".to_vec()));
    let stats = a.stats();
    assert!(stats.frames_sent >= 9 && stats.frames_received >= 9, "{stats:?}");
    assert_eq!((stats.frames_rejected, stats.messages_dropped_total), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_payload_arrives_intact_and_a_larger_one_is_refused() {
    let a = node(1, Some(9)).await;
    let b = node(2, Some(9)).await;
    a.set_peer_address(NodeId(2), &address(&b)).expect("address");
    let sender = a.endpoint(data(1)).expect("endpoint");
    let receiver = b.endpoint(data(2)).expect("endpoint");

    let payload: Vec<u8> = (0..MAX_MESSAGE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    sender.send(data(2), payload.clone()).await.expect("largest message accepted");
    sender.send(data(2), b"after".to_vec()).await.expect("small message");
    let (from, got) = recv(&receiver).await;
    assert_eq!(from, data(1));
    assert!(got == payload, "16 MiB payload damaged in transit");
    assert_eq!(recv(&receiver).await.1, b"after");

    let too_large = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let refused = NetError::MessageTooLarge { size_bytes: MAX_MESSAGE_BYTES + 1 };
    assert_eq!(sender.send(data(2), too_large.clone()).await, Err(refused.clone()));
    assert_eq!(sender.send(other(1), too_large).await, Err(refused), "also to a local endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_listener_probes_sends_and_gets_replies_over_its_connection() {
    let server = node(5, Some(0xC1)).await;
    let server_data = server.endpoint(data(5)).expect("endpoint");
    let client = Transport::start(NodeId(1000), None, config(None)).await.expect("client");
    assert_eq!(client.local_addr(), None);
    let client_ep = client.endpoint(other(1000)).expect("endpoint");

    // The server has no address for the client and no connection from it yet.
    assert_eq!(server_data.send(other(1000), b"too early".to_vec()).await, Err(NetError::UnknownNode(other(1000))));
    assert_eq!(client_ep.send(data(5), b"x".to_vec()).await, Err(NetError::UnknownNode(data(5))));

    let (id, cluster) = client.probe(&address(&server)).await.expect("probe");
    assert_eq!((id, cluster), (NodeId(5), 0xC1));

    for round in 0..3u8 {
        client_ep.send(data(5), vec![round]).await.expect("send to the probed node");
        let (from, payload) = recv(&server_data).await;
        assert_eq!((from, payload.clone()), (other(1000), vec![round]));
        server_data.send(from, [b"echo ".as_slice(), &payload].concat()).await.expect("reply over the inbound link");
        assert_eq!(recv(&client_ep).await, (data(5), [b"echo ".as_slice(), &[round]].concat()));
    }
    assert_eq!(client.stats().connections_open, 1, "one pooled connection carried everything");

    // The client adopted cluster 0xC1 and now refuses a node of another cluster.
    let stranger = node(6, Some(0xC2)).await;
    match client.probe(&address(&stranger)).await {
        Err(TransportError::ClusterMismatch { ours, theirs, .. }) => assert_eq!((ours, theirs), (0xC1, 0xC2)),
        other => panic!("expected a cluster mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_the_same_port_is_reached_again() {
    let a = node(1, Some(9)).await;
    let b = node(2, Some(9)).await;
    let b_address = address(&b);
    a.set_peer_address(NodeId(2), &b_address).expect("address");
    let sender = a.endpoint(data(1)).expect("endpoint");
    let b_ep = b.endpoint(data(2)).expect("endpoint");
    sender.send(data(2), b"before".to_vec()).await.expect("send");
    assert_eq!(recv(&b_ep).await.1, b"before");

    b.shutdown();
    drop((b, b_ep));
    eventually("a notices the connection is gone", || a.stats().connections_open == 0).await;

    // Restart on the same port; the old listener is released once its task sees the shutdown.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let b = loop {
        match Transport::start(NodeId(2), Some(&b_address), config(Some(9))).await {
            Ok(b) => break b,
            Err(TransportError::Bind { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("restart failed: {error}"),
        }
    };
    let b_ep = b.endpoint(data(2)).expect("endpoint");
    for i in 0..5u8 {
        sender.send(data(2), vec![i]).await.expect("send after restart");
    }
    for i in 0..5u8 {
        assert_eq!(recv(&b_ep).await, (data(1), vec![i]), "message sent after the restart");
    }
    assert!(a.stats().connects_total >= 2, "{:?}", a.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_refused_with_queue_full_when_a_peer_is_unreachable() {
    // A listener that never accepts: the kernel completes the TCP handshake, nobody answers the hello.
    // (A released port could be reused by a parallel test's node.)
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_port = silent.local_addr().expect("addr");
    let config = TransportConfig { peer_queue_messages_max: 8, connect_timeout_ms: 200, ..config(Some(9)) };
    let a = Transport::start(NodeId(1), None, config).await.expect("start");
    a.set_peer_address(NodeId(2), &closed_port.to_string()).expect("address");
    let sender = a.endpoint(data(1)).expect("endpoint");
    for i in 0..8u8 {
        sender.send(data(2), vec![i; 100]).await.expect("room in the queue");
    }
    assert_eq!(sender.send(data(2), vec![9; 100]).await, Err(NetError::QueueFull(data(2))));
    let stats = a.stats();
    assert_eq!(stats.send_queue_messages, 8, "{stats:?}");
    eventually("hellos time out", || a.stats().connect_failures_total >= 2).await;
    assert_eq!(sender.send(data(2), vec![9; 100]).await, Err(NetError::QueueFull(data(2))), "still full while down");

    // The byte bound applies the same way.
    let config = TransportConfig { peer_queue_bytes_max: 4_096, ..self::config(Some(9)) };
    let b = Transport::start(NodeId(3), None, config).await.expect("start");
    b.set_peer_address(NodeId(2), &closed_port.to_string()).expect("address");
    let sender = b.endpoint(data(3)).expect("endpoint");
    sender.send(data(2), vec![0; 3_000]).await.expect("fits");
    assert_eq!(sender.send(data(2), vec![0; 3_000]).await, Err(NetError::QueueFull(data(2))));
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_transport_on_a_port_in_use_is_a_bind_error_naming_the_port() {
    let a = node(1, Some(9)).await;
    let taken = address(&a);
    let error = Transport::start(NodeId(2), Some(&taken), config(Some(9))).await.expect_err("port in use");
    assert!(matches!(error, TransportError::Bind { .. }), "{error:?}");
    let message = error.to_string();
    let port = a.local_addr().expect("listening").port().to_string();
    assert!(message.contains(&port) && message.contains("in use"), "unhelpful message: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_cluster_is_refused_and_gets_nothing() {
    let a = node(1, Some(1)).await;
    let b = node(2, Some(2)).await;
    let b_ep = b.endpoint(data(2)).expect("endpoint");
    match a.probe(&address(&b)).await {
        Err(TransportError::ClusterMismatch { ours, theirs, .. }) => assert_eq!((ours, theirs), (1, 2)),
        other => panic!("expected a cluster mismatch, got {other:?}"),
    }
    a.set_peer_address(NodeId(2), &address(&b)).expect("address");
    let sender = a.endpoint(data(1)).expect("endpoint");
    sender.send(data(2), b"wrong cluster".to_vec()).await.expect("queued");
    eventually("b refuses a's hello", || b.stats().hello_rejected_total >= 2).await;
    eventually("a counts failed dials", || a.stats().connect_failures_total >= 1).await;
    assert_quiet(&b_ep).await;
    assert_eq!(b.stats().connections_open, 0);
}

/// A frame as docs/design/transport.md specifies it, built independently of the transport's code.
fn raw_frame(kind: u8, from: u64, to: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&0x5453_4652u32.to_be_bytes());
    frame.push(1);
    frame.push(kind);
    frame.extend_from_slice(&0u16.to_be_bytes());
    frame.extend_from_slice(&from.to_be_bytes());
    frame.extend_from_slice(&to.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame), payload);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_frame_is_rejected_and_its_connection_closed() {
    let server = node(5, Some(9)).await;
    let server_ep = server.endpoint(data(5)).expect("endpoint");
    let mut stream = tokio::net::TcpStream::connect(address(&server)).await.expect("connect");

    let mut hello = 9u128.to_be_bytes().to_vec();
    hello.extend_from_slice(&99u64.to_be_bytes());
    hello.extend_from_slice(&4u16.to_be_bytes());
    hello.extend_from_slice(b"test");
    stream.write_all(&raw_frame(1, 99, 5, &hello)).await.expect("hello");
    let mut ack_header = [0u8; 32];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut ack_header)).await.expect("ack in time").expect("ack");
    assert_eq!(&ack_header[0..6], &[b'T', b'S', b'F', b'R', 1, 2], "a hello-ack");
    let mut ack = vec![0u8; u32::from_be_bytes(ack_header[24..28].try_into().expect("4 bytes")) as usize];
    stream.read_exact(&mut ack).await.expect("ack payload");
    assert_eq!(u128::from_be_bytes(ack[0..16].try_into().expect("16 bytes")), 9, "the server's cluster id");

    // A good frame is delivered: the connection and the frame builder work.
    stream.write_all(&raw_frame(3, other(99).0, data(5).0, b"good")).await.expect("write");
    assert_eq!(recv(&server_ep).await, (other(99), b"good".to_vec()));

    // The same frame with one payload byte changed after the checksum was computed.
    let mut bad = raw_frame(3, other(99).0, data(5).0, b"evil");
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    stream.write_all(&bad).await.expect("write");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(PATIENCE, async {
        // Keepalives may still be in flight; the server closes right after the bad frame.
        loop {
            match stream.read(&mut byte).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server must close the connection after a bad frame");
    // Whatever follows on the dead connection is not delivered either.
    let _ = stream.write_all(&raw_frame(3, other(99).0, data(5).0, b"late")).await;
    assert_quiet(&server_ep).await;
    let stats = server.stats();
    assert_eq!((stats.frames_rejected, stats.connections_open), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_makes_recv_return_closed() {
    let a = node(1, Some(9)).await;
    let ep = a.endpoint(data(1)).expect("endpoint");
    let waiting = a.endpoint(other(1)).expect("endpoint");
    ep.send(data(1), b"queued before shutdown".to_vec()).await.expect("local send");
    let waiter = tokio::spawn(async move { waiting.recv().await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    a.shutdown();
    assert_eq!(tokio::time::timeout(PATIENCE, waiter).await.expect("woken").expect("task"), Err(NetError::Closed));
    assert_eq!(recv(&ep).await.1, b"queued before shutdown", "what was queued is still delivered");
    assert_eq!(ep.recv().await, Err(NetError::Closed));
    assert_eq!(ep.send(data(1), b"x".to_vec()).await, Err(NetError::Closed));
    assert_eq!(a.endpoint(rebuilder(1)).err(), Some(TransportError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_ids_are_checked_and_unknown_nodes_refused() {
    let a = node(1, Some(9)).await;
    assert_eq!(a.endpoint(data(2)).err(), Some(TransportError::NotLocal(data(2))));
    let ep = a.endpoint(data(1)).expect("endpoint");
    assert_eq!(a.endpoint(data(1)).err(), Some(TransportError::EndpointTaken(data(1))));
    assert_eq!(ep.send(data(3), b"x".to_vec()).await, Err(NetError::UnknownNode(data(3))));
    assert!(matches!(a.set_peer_address(NodeId(3), "no-port"), Err(TransportError::BadAddress { .. })));
    assert!(matches!(a.set_peer_address(data(3), "127.0.0.1:1"), Err(TransportError::NotProcessId(_))));
    // A message to a local endpoint that is not open is dropped and counted, not an error.
    ep.send(other(1), b"nobody".to_vec()).await.expect("accepted");
    assert_eq!(a.stats().messages_dropped_total, 1);
    // Dropping every handle of an endpoint closes it; the id can be opened again.
    drop(ep);
    let again = a.endpoint(data(1)).expect("reopened");
    again.send(data(1), b"self".to_vec()).await.expect("send to self");
    assert_eq!(recv(&again).await, (data(1), b"self".to_vec()));
    assert!(matches!(
        Transport::start(data(1), None, TransportConfig::default()).await,
        Err(TransportError::NotProcessId(_))
    ));
}

/// A listener that answers the hello as node `id` of cluster `cluster_id`, then never reads again.
async fn mute_peer(id: u64, cluster_id: u128) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut header = [0u8; 32];
            if stream.read_exact(&mut header).await.is_err() {
                continue;
            }
            let mut hello = vec![0u8; u32::from_be_bytes(header[24..28].try_into().expect("4 bytes")) as usize];
            if stream.read_exact(&mut hello).await.is_err() {
                continue;
            }
            let dialler = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
            let mut ack = cluster_id.to_be_bytes().to_vec();
            ack.extend_from_slice(&id.to_be_bytes());
            ack.extend_from_slice(&0u16.to_be_bytes());
            let _ = stream.write_all(&raw_frame(2, id, dialler, &ack)).await;
            held.push(stream); // keep the connection open, unread
        }
    });
    (address, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_loses_its_connection_and_queue() {
    let (mute_address, mute) = mute_peer(2, 9).await;
    let config = TransportConfig { write_timeout_ms: 300, idle_timeout_ms: 600_000, ..config(Some(9)) };
    let a = Transport::start(NodeId(1), None, config).await.expect("start");
    a.set_peer_address(NodeId(2), &mute_address).expect("address");
    let sender = a.endpoint(data(1)).expect("endpoint");
    // Far more than the kernel's socket buffers hold.
    for _ in 0..24 {
        sender.send(data(2), vec![0xAB; 4 << 20]).await.expect("queued");
    }
    eventually("the writer gives up and drops the queue", || {
        let stats = a.stats();
        stats.messages_dropped_total > 0 && stats.send_queue_messages == 0 && stats.connections_open == 0
    })
    .await;
    sender.send(data(2), vec![1; 10]).await.expect("the queue has room again");
    mute.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_peer_address_is_detected_and_can_be_replaced() {
    let a = node(1, Some(9)).await;
    let b = node(2, Some(9)).await;
    let c = node(3, Some(9)).await;
    let b_ep = b.endpoint(data(2)).expect("endpoint");
    let c_ep = c.endpoint(data(3)).expect("endpoint");
    let sender = a.endpoint(data(1)).expect("endpoint");

    // A believes node 2 listens where node 3 does: the hello exposes it, nothing is delivered to 3.
    a.set_peer_address(NodeId(2), &address(&c)).expect("address");
    sender.send(data(2), b"for node 2".to_vec()).await.expect("queued");
    eventually("a refuses the wrong node", || a.stats().hello_rejected_total >= 1).await;
    assert_quiet(&c_ep).await;

    a.set_peer_address(NodeId(2), &address(&b)).expect("address");
    assert_eq!(recv(&b_ep).await, (data(1), b"for node 2".to_vec()), "the queued message follows the new address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_shuts_the_transport_down_and_frees_its_port() {
    let a = node(1, Some(9)).await;
    let listen = address(&a);
    let ep = a.endpoint(data(1)).expect("endpoint");
    drop(a);
    // The endpoint still holds the transport: the port stays taken.
    assert!(matches!(
        Transport::start(NodeId(1), Some(&listen), config(Some(9))).await,
        Err(TransportError::Bind { .. })
    ));
    drop(ep);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match Transport::start(NodeId(1), Some(&listen), config(Some(9))).await {
            Ok(_) => break,
            Err(TransportError::Bind { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the port was not released: {error}"),
        }
    }
}
