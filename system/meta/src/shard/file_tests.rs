//! File contents in a shard: `Write`/`ReadMap` (inline, extents, overwrites, truncation, holes, the
//! inline limit, types), the garbage queue (overwrite, truncate, unlink, also across shards),
//! `MoveChunk`/`GetStripe`, `ScanStripes` paging and `TakeGarbage`/`ReleaseGarbage`.

use tessera_env::NodeId;

use crate::content::{
    FileMap, INLINE_LEN_MAX_BYTES, NewExtent, Piece, StripeId, StripeLayout, StripeRef, WRITE_EXTENTS_MAX, WriteData,
};
use crate::{Credentials, Errno, InodeId, LocalCluster, MetaOp, MetaReply, MetaResult, SetAttr};

use super::{NotLocal, ShardState, dir_shard};

fn root() -> Credentials {
    Credentials::root()
}

fn stripe(seq: u64, nodes: usize) -> StripeRef {
    StripeRef {
        id: StripeId::new(7, seq),
        layout: StripeLayout::ErasureCoded { data: (nodes - 2) as u8, parity: 2, codec: 0 },
        chunk_len_bytes: 4096,
        data_len_bytes: 4096 * (nodes as u32 - 2),
        nodes: (0..nodes as u64).map(|n| NodeId(100 + n)).collect(),
    }
}

fn ext(file_offset: u64, len_bytes: u64, stripe: &StripeRef, stripe_offset_bytes: u64) -> NewExtent {
    NewExtent { file_offset, len_bytes, stripe: stripe.clone(), stripe_offset_bytes }
}

fn write_extents(ino: InodeId, extents: Vec<NewExtent>) -> MetaOp {
    MetaOp::Write { ino, offset: extents[0].file_offset, data: WriteData::Extents(extents), creds: root() }
}

fn write_inline(ino: InodeId, offset: u64, bytes: &[u8]) -> MetaOp {
    MetaOp::Write { ino, offset, data: WriteData::Inline(bytes.to_vec()), creds: root() }
}

struct Shard {
    state: ShardState,
    now: u64,
}

impl Shard {
    fn new() -> Shard {
        Shard { state: ShardState::new(0, 1, Some((InodeId::ROOT, 1))), now: 1 }
    }

    fn run(&mut self, op: MetaOp) -> MetaResult {
        self.now += 1;
        let result = self.state.apply(&op, self.now).expect("a one-shard cluster holds everything");
        self.state.check_invariants().unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        result
    }

    fn create(&mut self, name: &str) -> InodeId {
        match self.run(MetaOp::Create { parent: InodeId::ROOT, name: name.into(), mode: 0o644, creds: root() }) {
            Ok(MetaReply::Entry(attr)) => attr.ino,
            other => panic!("create {name}: {other:?}"),
        }
    }

    fn size(&mut self, op: MetaOp) -> u64 {
        match self.run(op) {
            Ok(MetaReply::Attr(attr)) => attr.size,
            other => panic!("{other:?}"),
        }
    }

    fn map(&mut self, ino: InodeId, offset: u64, len: u64) -> FileMap {
        match self.run(MetaOp::ReadMap { ino, offset, len }) {
            Ok(MetaReply::FileMap(map)) => map,
            other => panic!("{other:?}"),
        }
    }

    fn garbage_ids(&self) -> Vec<StripeId> {
        self.state.garbage().values().map(|s| s.id).collect()
    }
}

fn piece(file_offset: u64, len_bytes: u64, stripe: &StripeRef, stripe_offset_bytes: u64) -> Piece {
    Piece { file_offset, len_bytes, stripe: stripe.clone(), stripe_offset_bytes }
}

#[test]
fn inline_writes_read_back_with_holes_and_truncation() {
    let mut s = Shard::new();
    let f = s.create("f");
    assert_eq!(s.size(write_inline(f, 0, b"hello")), 5);
    // A gap is zero-filled; the size follows the end.
    assert_eq!(s.size(write_inline(f, 10, b"world")), 15);
    let map = s.map(f, 3, 100);
    assert_eq!(map, FileMap { size: 15, inline: b"lo\0\0\0\0\0world".to_vec(), pieces: vec![] });
    // An empty write changes nothing; a truncate cuts the inline layer, growing leaves a hole.
    assert_eq!(s.size(write_inline(f, 100, b"")), 15);
    assert_eq!(s.size(MetaOp::Truncate { ino: f, size: 4, creds: root() }), 4);
    assert_eq!(s.size(MetaOp::Truncate { ino: f, size: 50, creds: root() }), 50);
    assert_eq!(s.map(f, 0, 100), FileMap { size: 50, inline: b"hell".to_vec(), pieces: vec![] });
    assert_eq!(s.map(f, 60, 10), FileMap { size: 50, inline: vec![], pieces: vec![] });
    // mtime and ctime are stamped.
    let now = s.now + 1;
    let Ok(MetaReply::Attr(attr)) = s.run(write_inline(f, 0, b"x")) else { panic!() };
    assert_eq!((attr.mtime_ns, attr.ctime_ns), (now, now));
    assert!(s.state.garbage().is_empty());
}

#[test]
fn inline_beyond_the_limit_or_over_extents_is_efbig() {
    let mut s = Shard::new();
    let f = s.create("f");
    let max = INLINE_LEN_MAX_BYTES;
    assert_eq!(s.size(write_inline(f, max - 2, b"ab")), max);
    assert_eq!(s.run(write_inline(f, max - 1, b"ab")), Err(Errno::EFBIG));
    let a = stripe(1, 6);
    assert_eq!(s.size(write_extents(f, vec![ext(max, 100, &a, 0)])), max + 100);
    assert_eq!(s.run(write_inline(f, 0, b"a")), Err(Errno::EFBIG));
    assert_eq!(s.state.inode_record(f).unwrap().attr.size, max + 100);
}

#[test]
fn writes_check_type_permission_and_extents() {
    let mut s = Shard::new();
    let f = s.create("f");
    assert_eq!(s.run(write_inline(InodeId::ROOT, 0, b"a")), Err(Errno::EISDIR));
    assert_eq!(s.run(MetaOp::ReadMap { ino: InodeId::ROOT, offset: 0, len: 1 }), Err(Errno::EISDIR));
    let link = MetaOp::Symlink { parent: InodeId::ROOT, name: "l".into(), target: "f".into(), creds: root() };
    let Ok(MetaReply::Entry(l)) = s.run(link) else { panic!() };
    assert_eq!(s.run(write_inline(l.ino, 0, b"a")), Err(Errno::EINVAL));
    assert_eq!(s.run(MetaOp::ReadMap { ino: l.ino, offset: 0, len: 1 }), Err(Errno::EINVAL));
    assert_eq!(s.run(write_inline(InodeId::new(0, 99), 0, b"a")), Err(Errno::ESTALE));
    let user =
        MetaOp::Write { ino: f, offset: 0, data: WriteData::Inline(b"a".to_vec()), creds: Credentials::user(5, 5) };
    assert_eq!(s.run(user), Err(Errno::EACCES));
    let a = stripe(1, 6);
    assert_eq!(s.run(write_extents(f, vec![ext(0, 10, &a, 0), ext(5, 10, &a, 20)])), Err(Errno::EINVAL));
    let mut short = a.clone();
    short.nodes.pop();
    assert_eq!(s.run(write_extents(f, vec![ext(0, 10, &short, 0)])), Err(Errno::EINVAL));
    assert_eq!(s.run(write_extents(f, vec![ext(0, 1, &a, u64::from(a.data_len_bytes))])), Err(Errno::EINVAL));
    let wrong_offset =
        MetaOp::Write { ino: f, offset: 3, data: WriteData::Extents(vec![ext(0, 1, &a, 0)]), creds: root() };
    assert_eq!(s.run(wrong_offset), Err(Errno::EINVAL));
    assert_eq!(s.state.inode_record(f).unwrap().attr.size, 0);
}

#[test]
fn overwrites_split_extents_and_queue_dropped_stripes() {
    let mut s = Shard::new();
    let f = s.create("f");
    let (a, b, c) = (stripe(1, 6), stripe(2, 6), stripe(3, 6));
    assert_eq!(s.size(write_extents(f, vec![ext(0, 1000, &a, 0)])), 1000);
    // A write inside an extent splits it; a hole before a new extent reads as nothing mapped.
    assert_eq!(s.size(write_extents(f, vec![ext(100, 50, &b, 10), ext(2000, 10, &c, 0)])), 2010);
    let map = s.map(f, 90, 2000);
    let want = vec![piece(90, 10, &a, 90), piece(100, 50, &b, 10), piece(150, 850, &a, 150), piece(2000, 10, &c, 0)];
    assert_eq!(map, FileMap { size: 2010, inline: vec![], pieces: want });
    assert!(s.garbage_ids().is_empty());
    // Covering all of b drops it; a is still referenced.
    s.size(write_extents(f, vec![ext(50, 200, &c, 100)]));
    assert_eq!(s.garbage_ids(), vec![b.id]);
    // A late write naming a queued stripe is refused.
    assert_eq!(s.run(write_extents(f, vec![ext(0, 10, &b, 0)])), Err(Errno::EINVAL));
    // Truncation drops what lies beyond; SetAttr's size does the same.
    s.size(MetaOp::Truncate { ino: f, size: 1500, creds: root() });
    assert_eq!(s.garbage_ids(), vec![b.id]);
    let set = MetaOp::SetAttr { ino: f, set: SetAttr { size: Some(40), ..SetAttr::default() }, creds: root() };
    assert_eq!(s.size(set), 40);
    assert_eq!(s.garbage_ids(), vec![b.id, c.id]);
    assert_eq!(s.map(f, 0, 100).pieces, vec![piece(0, 40, &a, 0)]);
    // The last link's removal drops the rest.
    s.run(MetaOp::Unlink { parent: InodeId::ROOT, name: "f".into(), creds: root() }).unwrap();
    assert_eq!(s.garbage_ids(), vec![b.id, c.id, a.id]);
}

#[test]
fn rename_over_a_file_queues_its_stripes() {
    let mut s = Shard::new();
    let (f, g) = (s.create("f"), s.create("g"));
    let (a, b) = (stripe(1, 6), stripe(2, 6));
    s.size(write_extents(f, vec![ext(0, 10, &a, 0)]));
    s.size(write_extents(g, vec![ext(0, 10, &b, 0)]));
    let link = MetaOp::Link { ino: g, new_parent: InodeId::ROOT, new_name: "g2".into(), creds: root() };
    s.run(link).unwrap();
    let rename = |name: &str, new_name: &str| MetaOp::Rename {
        parent: InodeId::ROOT,
        name: name.into(),
        new_parent: InodeId::ROOT,
        new_name: new_name.into(),
        creds: root(),
    };
    // g keeps a link: nothing is dropped; then f goes.
    s.run(rename("f", "g")).unwrap();
    assert!(s.garbage_ids().is_empty());
    s.run(rename("g", "g2")).unwrap();
    assert_eq!(s.garbage_ids(), vec![b.id]);
}

#[test]
fn move_chunk_and_get_stripe() {
    let mut s = Shard::new();
    let f = s.create("f");
    let a = stripe(1, 6);
    s.size(write_extents(f, vec![ext(0, 10, &a, 0), ext(20, 10, &a, 100)]));
    assert_eq!(s.run(MetaOp::GetStripe { ino: f, stripe: a.id }), Ok(MetaReply::Stripe(a.clone())));
    assert_eq!(s.run(MetaOp::GetStripe { ino: f, stripe: StripeId(5) }), Err(Errno::ENOENT));
    let mv = |index: u8, from: u64, to: u64| MetaOp::MoveChunk {
        ino: f,
        stripe: a.id,
        index,
        from: NodeId(from),
        to: NodeId(to),
    };
    assert_eq!(s.run(mv(2, 999, 1)), Err(Errno::EAGAIN));
    assert_eq!(s.run(mv(6, 102, 1)), Err(Errno::EINVAL));
    assert_eq!(s.run(mv(2, 102, 1)), Ok(MetaReply::Done));
    let mut moved = a.clone();
    moved.nodes[2] = NodeId(1);
    assert_eq!(s.run(MetaOp::GetStripe { ino: f, stripe: a.id }), Ok(MetaReply::Stripe(moved.clone())));
    assert!(s.map(f, 0, 30).pieces.iter().all(|p| p.stripe == moved));
    let gone = MetaOp::MoveChunk { ino: f, stripe: StripeId(5), index: 0, from: NodeId(100), to: NodeId(1) };
    assert_eq!(s.run(gone), Err(Errno::ENOENT));
    s.run(MetaOp::Unlink { parent: InodeId::ROOT, name: "f".into(), creds: root() }).unwrap();
    assert_eq!(s.run(mv(2, 1, 2)), Err(Errno::ESTALE));
    // The queued stripe is the moved one.
    assert_eq!(s.state.garbage().values().cloned().collect::<Vec<_>>(), vec![moved]);
}

#[test]
fn scan_stripes_pages_in_inode_and_stripe_order() {
    let mut s = Shard::new();
    let files: Vec<InodeId> = (0..3).map(|i| s.create(&format!("f{i}"))).collect();
    let mut want = Vec::new();
    for (i, &f) in files.iter().enumerate() {
        // Stripe ids in reverse file order: the scan sorts by id within each inode.
        let extents: Vec<NewExtent> =
            (0..3u64).map(|j| ext(j * 10, 10, &stripe(100 - (i as u64) * 10 - j, 6), 0)).collect();
        let mut mine: Vec<(InodeId, StripeRef)> = extents.iter().map(|e| (f, e.stripe.clone())).collect();
        mine.sort_by_key(|(_, s)| s.id);
        want.extend(mine);
        s.size(write_extents(f, extents));
    }
    s.create("empty");
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let Ok(MetaReply::Stripes { stripes, next }) = s.run(MetaOp::ScanStripes { shard: 0, after, max: 4 }) else {
            panic!()
        };
        assert!(stripes.len() <= 4);
        got.extend(stripes);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(got, want);
    assert_eq!(s.run(MetaOp::ScanStripes { shard: 0, after: None, max: 0 }), Err(Errno::EINVAL));
    let exact = s.run(MetaOp::ScanStripes { shard: 0, after: None, max: 9 });
    assert_eq!(exact, Ok(MetaReply::Stripes { stripes: want, next: None }));
}

#[test]
fn garbage_is_taken_oldest_first_and_released() {
    let mut s = Shard::new();
    let f = s.create("f");
    for i in 0..5 {
        s.size(write_extents(f, vec![ext(0, 10, &stripe(i, 6), 0)]));
    }
    let Ok(MetaReply::Garbage(page)) = s.run(MetaOp::TakeGarbage { shard: 0, max: 3 }) else { panic!() };
    let seqs: Vec<u64> = page.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        page.iter().map(|(_, s)| s.id).collect::<Vec<_>>(),
        vec![stripe(0, 6).id, stripe(1, 6).id, stripe(2, 6).id]
    );
    // Taking removes nothing; releasing does, ignoring unknown seqs.
    assert_eq!(s.state.garbage().len(), 4);
    assert_eq!(
        s.run(MetaOp::ReleaseGarbage { shard: 0, seqs: [seqs.clone(), vec![77]].concat() }),
        Ok(MetaReply::Done)
    );
    assert_eq!(s.garbage_ids(), vec![stripe(3, 6).id]);
    assert_eq!(s.run(MetaOp::ReleaseGarbage { shard: 0, seqs }), Ok(MetaReply::Done));
    assert_eq!(s.run(MetaOp::TakeGarbage { shard: 0, max: 0 }), Err(Errno::EINVAL));
    // Sequence numbers are never reused.
    s.run(MetaOp::Truncate { ino: f, size: 0, creds: root() }).unwrap();
    assert_eq!(s.state.garbage().keys().copied().collect::<Vec<_>>(), vec![3, 4]);
}

#[test]
fn shard_addressed_ops_go_to_their_shard() {
    let mut state = ShardState::new(1, 3, None);
    assert_eq!(state.apply(&MetaOp::TakeGarbage { shard: 2, max: 1 }, 1), Err(NotLocal { shards: vec![2] }));
    assert_eq!(state.apply(&MetaOp::TakeGarbage { shard: 1, max: 1 }, 1), Ok(Ok(MetaReply::Garbage(vec![]))));
    assert_eq!(crate::shard::home_shard(&MetaOp::ReleaseGarbage { shard: 2, seqs: vec![] }), 2);
    assert!(MetaOp::ScanStripes { shard: 0, after: None, max: 1 }.inodes().is_empty());
    let mut cluster = LocalCluster::new(3);
    assert_eq!(cluster.execute(&MetaOp::TakeGarbage { shard: 2, max: 1 }, 1), Ok(MetaReply::Garbage(vec![])));
    assert_eq!(cluster.execute(&MetaOp::TakeGarbage { shard: 9, max: 1 }, 1), Err(Errno::EINVAL));
}

/// A name whose new directory `dir_shard` places in `shard`.
fn dir_name_in(parent: InodeId, shard: u16, shard_count: u16) -> String {
    (0..).map(|i| format!("d{i}")).find(|n| dir_shard(parent, n, shard_count) == shard).unwrap()
}

#[test]
fn a_cross_shard_unlink_queues_the_stripes_in_the_inodes_shard() {
    let mut cluster = LocalCluster::new(2);
    let mut now = 1;
    let mut run = |cluster: &mut LocalCluster, op: MetaOp| {
        now += 1;
        let result = cluster.execute(&op, now);
        for shard in cluster.shards() {
            shard.check_invariants().unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        }
        result
    };
    let d = dir_name_in(InodeId::ROOT, 1, 2);
    let Ok(MetaReply::Entry(dir)) =
        run(&mut cluster, MetaOp::Mkdir { parent: InodeId::ROOT, name: d, mode: 0o755, creds: root() })
    else {
        panic!()
    };
    assert_eq!(dir.ino.shard(), 1);
    let create = MetaOp::Create { parent: InodeId::ROOT, name: "f".into(), mode: 0o644, creds: root() };
    let Ok(MetaReply::Entry(f)) = run(&mut cluster, create) else { panic!() };
    assert_eq!(f.ino.shard(), 0);
    let a = stripe(1, 6);
    run(&mut cluster, write_extents(f.ino, vec![ext(0, 10, &a, 0)])).unwrap();
    // Two links, the second in shard 1; removing the first (a PutInode with the same content) drops
    // nothing.
    let link = MetaOp::Link { ino: f.ino, new_parent: dir.ino, new_name: "g".into(), creds: root() };
    run(&mut cluster, link).unwrap();
    run(&mut cluster, MetaOp::Unlink { parent: InodeId::ROOT, name: "f".into(), creds: root() }).unwrap();
    assert!(cluster.shards()[0].garbage().is_empty());
    // The last link lives in shard 1, the inode in shard 0: a transaction's RemoveInode.
    let planned = cluster.stats().planned;
    run(&mut cluster, MetaOp::Unlink { parent: dir.ino, name: "g".into(), creds: root() }).unwrap();
    assert!(cluster.stats().planned > planned, "the unlink was cross-shard");
    assert_eq!(cluster.shards()[0].garbage().values().cloned().collect::<Vec<_>>(), vec![a]);
    assert!(cluster.shards()[1].garbage().is_empty());
    let take = MetaOp::TakeGarbage { shard: 0, max: 10 };
    assert!(matches!(run(&mut cluster, take), Ok(MetaReply::Garbage(g)) if g.len() == 1));
}

#[test]
fn a_write_of_many_wide_extents_fits_a_message() {
    let extents: Vec<NewExtent> =
        (0..WRITE_EXTENTS_MAX as u64).map(|i| ext(i * 1000, 1000, &stripe(i, 20), 0)).collect();
    let op = write_extents(InodeId::new(3, 9), extents);
    let call = crate::exec::ShardCall::Apply { op };
    let req = crate::exec::ReqId { client: 1, seq: 1 };
    let bytes = crate::wire::MetaMessage::Request { req, shard: 3, epoch: 1, call }.encode();
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    assert!(matches!(crate::wire::MetaMessage::decode(&bytes), Ok(crate::wire::MetaMessage::Request { .. })));
}

#[test]
fn wire_indexes_of_the_content_ops_are_documented() {
    // docs/formats/wire.md: MetaOp 18 Write .. 24 ReleaseGarbage; MetaReply 8 FileMap .. 11 Garbage.
    let write = MetaOp::Write { ino: InodeId(1), offset: 0, data: WriteData::Inline(vec![]), creds: root() };
    assert_eq!(tessera_proto::encode(&write)[0], 18);
    assert_eq!(tessera_proto::encode(&MetaOp::ReleaseGarbage { shard: 0, seqs: vec![] })[0], 24);
    let map = MetaReply::FileMap(FileMap { size: 0, inline: vec![], pieces: vec![] });
    assert_eq!(tessera_proto::encode(&map)[0], 8);
    assert_eq!(tessera_proto::encode(&MetaReply::Garbage(vec![]))[0], 11);
}
