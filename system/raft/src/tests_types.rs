//! Lossless conversions between our types and raft-rs's `eraftpb` types, and their codec round trip.

use proptest::prelude::*;
use raft::eraftpb;

use crate::types::{EntryKind, HardState, LogEntry, MessageType, RaftMessage, SnapshotData};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..24)
}

fn ids() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(any::<u64>(), 0..5)
}

fn entry() -> impl Strategy<Value = LogEntry> {
    (
        any::<u64>(),
        any::<u64>(),
        prop_oneof![Just(EntryKind::Normal), Just(EntryKind::ConfChange), Just(EntryKind::ConfChangeV2)],
        bytes(),
        bytes(),
    )
        .prop_map(|(index, term, kind, data, context)| LogEntry { index, term, kind, data, context })
}

fn snapshot() -> impl Strategy<Value = SnapshotData> {
    (any::<u64>(), any::<u64>(), ids(), ids(), ids(), ids(), any::<bool>(), bytes()).prop_map(
        |(index, term, voters, learners, voters_outgoing, learners_next, auto_leave, data)| SnapshotData {
            index,
            term,
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave,
            data,
        },
    )
}

fn message() -> impl Strategy<Value = RaftMessage> {
    (
        (0..MessageType::ALL.len()).prop_map(|i| MessageType::ALL[i]),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        proptest::collection::vec(entry(), 0..4),
        (any::<u64>(), any::<u64>(), proptest::option::of(snapshot()), any::<u64>()),
        (any::<bool>(), any::<u64>(), bytes(), any::<u64>(), any::<i64>()),
    )
        .prop_map(
            |(
                msg_type,
                (to, from, term, log_term, index),
                entries,
                (commit, commit_term, snapshot, request_snapshot),
                (reject, reject_hint, context, deprecated_priority, priority),
            )| RaftMessage {
                msg_type,
                to,
                from,
                term,
                log_term,
                index,
                entries,
                commit,
                commit_term,
                snapshot,
                request_snapshot,
                reject,
                reject_hint,
                context,
                deprecated_priority,
                priority,
            },
        )
}

proptest! {
    #[test]
    fn message_round_trips_through_eraftpb_and_the_codec(m in message()) {
        let pb = m.to_pb();
        prop_assert_eq!(RaftMessage::from_pb(&pb), m.clone());
        // And pb -> ours -> pb is the identity on messages built by raft-rs's field setters.
        prop_assert!(RaftMessage::from_pb(&pb).to_pb() == pb);
        let bytes = tessera_proto::encode(&m);
        prop_assert_eq!(tessera_proto::decode::<RaftMessage>(&bytes), Ok(m));
    }

    #[test]
    fn entry_snapshot_hard_state_round_trip(e in entry(), s in snapshot(), hs in any::<(u64, u64, u64)>()) {
        prop_assert_eq!(LogEntry::from_pb(&e.to_pb()), e.clone());
        prop_assert!(LogEntry::from_pb(&e.to_pb()).to_pb() == e.to_pb());
        prop_assert_eq!(SnapshotData::from_pb(&s.to_pb()), s.clone());
        prop_assert!(SnapshotData::from_pb(&s.to_pb()).to_pb() == s.to_pb());
        let hs = HardState { term: hs.0, vote: hs.1, commit: hs.2 };
        prop_assert_eq!(HardState::from_pb(&hs.to_pb()), hs);
        prop_assert_eq!(tessera_proto::decode::<LogEntry>(&tessera_proto::encode(&e)), Ok(e));
        prop_assert_eq!(tessera_proto::decode::<SnapshotData>(&tessera_proto::encode(&s)), Ok(s));
    }

    /// Messages off the network are decoded only by tessera-proto: garbage is an error, never a panic.
    #[test]
    fn garbage_never_decodes_into_a_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = tessera_proto::decode::<RaftMessage>(&b);
    }
}

#[test]
fn message_types_map_one_to_one() {
    for t in MessageType::ALL {
        assert_eq!(MessageType::from_pb(t.to_pb()), t);
    }
    let mut pb: Vec<i32> = MessageType::ALL.iter().map(|t| t.to_pb() as i32).collect();
    pb.sort();
    assert_eq!(pb, (0..19).collect::<Vec<i32>>());
    let e = eraftpb::Entry { sync_log: false, ..Default::default() };
    assert_eq!(LogEntry::from_pb(&e).to_pb(), e);
}
