#!/usr/bin/env python3
"""Planted bugs for checking that campaigns find them (issue 6). Never commit a planted tree.

    python3 faults/plants/plant.py NAME plant     # apply the bug to the working tree
    python3 faults/plants/plant.py NAME unplant   # take it out again (checks the text is exactly back)
    python3 faults/plants/plant.py list

Then build and run a campaign, e.g.
    cargo build --release -p tessera-sim && cp target/release/tessera-sim /tmp/planted
    python3 faults/plants/plant.py NAME unplant
    /tmp/planted campaign --seeds 0..60 --jobs 2
Run from the repository root. docs/SIMULATION.md lists which seed found each.
"""
import sys
plants = {
 "stale-parity": ("system/data/src/client/write.rs",
   "        let chunks = encode_stripe(&shape, data).expect(\"layout validated\");\n",
   """        let mut chunks = encode_stripe(&shape, data).expect("layout validated");
        let n = shape.layout.data_chunks();
        if n > 1 {
            let stale = encode_stripe(&shape, &vec![0u8; data.len()]).expect("layout validated");
            for i in n..chunks.len() {
                chunks[i] = stale[i].clone();
            }
        }
"""),
 "skip-recovery": ("system/meta/src/host/duties.rs",
   "            let mut send = state.recover();\n",
   "            let mut send: Vec<crate::shard::Envelope> = { let _ = state.recover(); Vec::new() };\n"),
 "stale-read": ("system/meta/src/host/node.rs",
   "            return;\n        };\n        if status.role != RaftRole::Leader {\n",
   """            return;
        };
        // Planted: any replica a client still takes for the leader (after a leader change, the old one)
        // answers reads from its own, possibly stale, state.
        if let Some(hosted) = self.shards.get(&shard) {
            let now_ns = self.now_ns(shard);
            let local = match &call {
                ShardCall::Read { keys } => Some(crate::exec::ShardAnswer::Read(hosted.replica.state().read(keys))),
                ShardCall::Apply { op } if op.is_read_only() => {
                    let mut state = hosted.replica.state().clone();
                    Some(crate::exec::ShardAnswer::Applied(state.apply(op, now_ns)))
                }
                _ => None,
            };
            if let Some(answer) = local {
                self.outbox.push((from, MetaMessage::Response { req, answer }));
                return;
            }
        }
        if status.role != RaftRole::Leader {
"""),
 "txn-quorum": ("system/meta/src/shard/txn.rs",
   "            && r.participants().all(|p| r.prepared.contains(&p))\n",
   "            && r.participants().filter(|p| r.prepared.contains(p)).count() + 1 >= r.participants().count()\n"),
 "write-quorum": ("system/data/src/client/write.rs",
   "            if results.iter().all(Result::is_ok) && !retry {\n",
   "            if results.iter().filter(|r| r.is_ok()).count() + 1 >= results.len() && !retry {\n"),
 "lost-flush": ("system/store/src/store.rs",
   "        self.write_blocks(layout.journal_start_block + self.journal_used_blocks, &encoded).await?;\n        self.flush().await?;\n",
   "        self.write_blocks(layout.journal_start_block + self.journal_used_blocks, &encoded).await?;\n"),
}
if sys.argv[1:] == ["list"]:
    for name, (path, _, _) in plants.items():
        print(name, path)
    sys.exit(0)
name, action = sys.argv[1], sys.argv[2]
path, good, bad = plants[name]
s = open(path).read()
if action == "plant":
    assert s.count(good) == 1, "good text not found once"
    s = s.replace(good, bad)
else:
    assert s.count(bad) == 1 and s.count(good) == 0
    s = s.replace(bad, good)
open(path, "w").write(s)
print(name, action, "ok")
