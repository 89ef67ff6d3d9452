//! Our own serde types for everything raft-rs exchanges with the world: messages, log entries, hard
//! state, snapshots. Raft messages travel (through `tessera-proto`) and are stored ONLY as these types;
//! protobuf bytes are never decoded by us (protobuf 2.28, RUSTSEC-2024-0437). The conversions to and
//! from raft-rs's `eraftpb` types are lossless for every field raft-rs reads (checked by proptests),
//! except `Entry::sync_log`, which is deprecated, never set and never read by raft-rs 0.7: it is dropped
//! (a conversion back yields `false`).
//!
//! Field order is the encoding (see `tessera-proto`): changing it changes the wire and disk formats
//! (docs/formats/raft-log.md).

use raft::eraftpb;
use serde::{Deserialize, Serialize};

/// The kind of a Raft message, mirroring `eraftpb::MessageType` variant for variant (same order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageType {
    Hup,
    Beat,
    Propose,
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    Unreachable,
    SnapStatus,
    CheckQuorum,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResp,
    RequestPreVote,
    RequestPreVoteResponse,
}

impl MessageType {
    pub const ALL: [MessageType; 19] = [
        MessageType::Hup,
        MessageType::Beat,
        MessageType::Propose,
        MessageType::Append,
        MessageType::AppendResponse,
        MessageType::RequestVote,
        MessageType::RequestVoteResponse,
        MessageType::Snapshot,
        MessageType::Heartbeat,
        MessageType::HeartbeatResponse,
        MessageType::Unreachable,
        MessageType::SnapStatus,
        MessageType::CheckQuorum,
        MessageType::TransferLeader,
        MessageType::TimeoutNow,
        MessageType::ReadIndex,
        MessageType::ReadIndexResp,
        MessageType::RequestPreVote,
        MessageType::RequestPreVoteResponse,
    ];

    pub(crate) fn to_pb(self) -> eraftpb::MessageType {
        use eraftpb::MessageType as P;
        match self {
            MessageType::Hup => P::MsgHup,
            MessageType::Beat => P::MsgBeat,
            MessageType::Propose => P::MsgPropose,
            MessageType::Append => P::MsgAppend,
            MessageType::AppendResponse => P::MsgAppendResponse,
            MessageType::RequestVote => P::MsgRequestVote,
            MessageType::RequestVoteResponse => P::MsgRequestVoteResponse,
            MessageType::Snapshot => P::MsgSnapshot,
            MessageType::Heartbeat => P::MsgHeartbeat,
            MessageType::HeartbeatResponse => P::MsgHeartbeatResponse,
            MessageType::Unreachable => P::MsgUnreachable,
            MessageType::SnapStatus => P::MsgSnapStatus,
            MessageType::CheckQuorum => P::MsgCheckQuorum,
            MessageType::TransferLeader => P::MsgTransferLeader,
            MessageType::TimeoutNow => P::MsgTimeoutNow,
            MessageType::ReadIndex => P::MsgReadIndex,
            MessageType::ReadIndexResp => P::MsgReadIndexResp,
            MessageType::RequestPreVote => P::MsgRequestPreVote,
            MessageType::RequestPreVoteResponse => P::MsgRequestPreVoteResponse,
        }
    }

    pub(crate) fn from_pb(t: eraftpb::MessageType) -> MessageType {
        use eraftpb::MessageType as P;
        match t {
            P::MsgHup => MessageType::Hup,
            P::MsgBeat => MessageType::Beat,
            P::MsgPropose => MessageType::Propose,
            P::MsgAppend => MessageType::Append,
            P::MsgAppendResponse => MessageType::AppendResponse,
            P::MsgRequestVote => MessageType::RequestVote,
            P::MsgRequestVoteResponse => MessageType::RequestVoteResponse,
            P::MsgSnapshot => MessageType::Snapshot,
            P::MsgHeartbeat => MessageType::Heartbeat,
            P::MsgHeartbeatResponse => MessageType::HeartbeatResponse,
            P::MsgUnreachable => MessageType::Unreachable,
            P::MsgSnapStatus => MessageType::SnapStatus,
            P::MsgCheckQuorum => MessageType::CheckQuorum,
            P::MsgTransferLeader => MessageType::TransferLeader,
            P::MsgTimeoutNow => MessageType::TimeoutNow,
            P::MsgReadIndex => MessageType::ReadIndex,
            P::MsgReadIndexResp => MessageType::ReadIndexResp,
            P::MsgRequestPreVote => MessageType::RequestPreVote,
            P::MsgRequestPreVoteResponse => MessageType::RequestPreVoteResponse,
        }
    }

    /// Messages raft-rs only ever generates for itself; [`crate::RaftNode::step`] refuses them from peers.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::Hup
                | MessageType::Beat
                | MessageType::Unreachable
                | MessageType::SnapStatus
                | MessageType::CheckQuorum
        )
    }
}

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Application data (empty data: the no-op a new leader appends).
    Normal,
    /// A v1 conf change. Our driver never proposes these; raft-rs does not either.
    ConfChange,
    /// A v2 conf change. `data` holds raft-rs's own protobuf encoding (never decoded by us); `context`
    /// holds our [`crate::ConfChangeRequest`] encoded with `tessera-proto` (empty: leave a joint config).
    ConfChangeV2,
}

/// One Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    pub data: Vec<u8>,
    pub context: Vec<u8>,
}

impl LogEntry {
    pub(crate) fn from_pb(e: &eraftpb::Entry) -> LogEntry {
        LogEntry {
            index: e.index,
            term: e.term,
            kind: match e.entry_type {
                eraftpb::EntryType::EntryNormal => EntryKind::Normal,
                eraftpb::EntryType::EntryConfChange => EntryKind::ConfChange,
                eraftpb::EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
            },
            data: e.data.to_vec(),
            context: e.context.to_vec(),
        }
    }

    pub(crate) fn to_pb(&self) -> eraftpb::Entry {
        let entry_type = match self.kind {
            EntryKind::Normal => eraftpb::EntryType::EntryNormal,
            EntryKind::ConfChange => eraftpb::EntryType::EntryConfChange,
            EntryKind::ConfChangeV2 => eraftpb::EntryType::EntryConfChangeV2,
        };
        eraftpb::Entry {
            entry_type,
            term: self.term,
            index: self.index,
            data: self.data.clone().into(),
            context: self.context.clone().into(),
            ..Default::default()
        }
    }

    /// Bytes this entry accounts for against size limits (payloads plus a fixed overhead).
    pub fn size_bytes(&self) -> u64 {
        (self.data.len() + self.context.len()) as u64 + 32
    }
}

/// The state Raft must persist before sending messages: current term, vote, commit index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

impl HardState {
    pub(crate) fn from_pb(h: &eraftpb::HardState) -> HardState {
        HardState { term: h.term, vote: h.vote, commit: h.commit }
    }

    pub(crate) fn to_pb(self) -> eraftpb::HardState {
        eraftpb::HardState { term: self.term, vote: self.vote, commit: self.commit, ..Default::default() }
    }
}

/// A snapshot: the application's state at `index`/`term` and the membership at that index.
/// `voters_outgoing`, `learners_next` and `auto_leave` describe a joint configuration (empty/false
/// outside one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotData {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
    pub data: Vec<u8>,
}

impl SnapshotData {
    pub(crate) fn from_pb(s: &eraftpb::Snapshot) -> SnapshotData {
        let meta = s.get_metadata();
        let cs = meta.get_conf_state();
        SnapshotData {
            index: meta.index,
            term: meta.term,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
            data: s.data.to_vec(),
        }
    }

    pub(crate) fn to_pb(&self) -> eraftpb::Snapshot {
        let metadata = eraftpb::SnapshotMetadata { index: self.index, term: self.term, ..Default::default() };
        let mut s = eraftpb::Snapshot { data: self.data.clone().into(), ..Default::default() };
        s.set_metadata(metadata);
        s.mut_metadata().set_conf_state(self.conf_state_pb());
        s
    }

    pub(crate) fn conf_state_pb(&self) -> eraftpb::ConfState {
        eraftpb::ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters_outgoing.clone(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
            ..Default::default()
        }
    }

    pub(crate) fn with_conf_state(index: u64, term: u64, cs: &eraftpb::ConfState, data: Vec<u8>) -> SnapshotData {
        SnapshotData {
            index,
            term,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
            data,
        }
    }
}

/// A Raft message between members of one group, mirroring `eraftpb::Message` field for field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMessage {
    pub msg_type: MessageType,
    pub to: u64,
    pub from: u64,
    pub term: u64,
    pub log_term: u64,
    pub index: u64,
    pub entries: Vec<LogEntry>,
    pub commit: u64,
    pub commit_term: u64,
    pub snapshot: Option<SnapshotData>,
    pub request_snapshot: u64,
    pub reject: bool,
    pub reject_hint: u64,
    pub context: Vec<u8>,
    pub deprecated_priority: u64,
    pub priority: i64,
}

impl RaftMessage {
    pub(crate) fn from_pb(m: &eraftpb::Message) -> RaftMessage {
        RaftMessage {
            msg_type: MessageType::from_pb(m.msg_type),
            to: m.to,
            from: m.from,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries: m.entries.iter().map(LogEntry::from_pb).collect(),
            commit: m.commit,
            commit_term: m.commit_term,
            snapshot: m.snapshot.as_ref().map(SnapshotData::from_pb),
            request_snapshot: m.request_snapshot,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: m.context.to_vec(),
            deprecated_priority: m.deprecated_priority,
            priority: m.priority,
        }
    }

    pub(crate) fn to_pb(&self) -> eraftpb::Message {
        let mut m = eraftpb::Message {
            msg_type: self.msg_type.to_pb(),
            to: self.to,
            from: self.from,
            term: self.term,
            log_term: self.log_term,
            index: self.index,
            entries: self.entries.iter().map(LogEntry::to_pb).collect(),
            commit: self.commit,
            commit_term: self.commit_term,
            request_snapshot: self.request_snapshot,
            reject: self.reject,
            reject_hint: self.reject_hint,
            context: self.context.clone().into(),
            deprecated_priority: self.deprecated_priority,
            priority: self.priority,
            ..Default::default()
        };
        if let Some(s) = &self.snapshot {
            m.set_snapshot(s.to_pb());
        }
        m
    }
}
