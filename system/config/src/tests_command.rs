//! Config commands: validation, typed errors that leave the config unchanged, epochs, idempotent
//! retries, and the shard map following membership.

use tessera_env::NodeId;

use crate::command::{ConfigCommand, ConfigError, JoinRequest, apply, apply_request};
use crate::model::{ClusterConfig, ClusterParams, DriveInfo, NodeState, PlacementMode, Protection, RequestId};
use crate::placement;

fn params() -> ClusterParams {
    ClusterParams { cluster_id: 7, shard_count: 64, shard_replication: 3 }
}

fn join(id: u64, rack: u32) -> ConfigCommand {
    ConfigCommand::Join(JoinRequest {
        node: NodeId(id),
        address: format!("10.0.{rack}.{id}:7000"),
        rack,
        drives: vec![DriveInfo { capacity_bytes: 1 << 40 }],
        weight: 1,
    })
}

/// A cluster of `racks` racks with `per_rack` nodes each (ids from 1).
fn cluster(racks: u32, per_rack: u32) -> ClusterConfig {
    let mut c = ClusterConfig::new(params());
    for r in 0..racks {
        for i in 0..per_rack {
            apply(&mut c, &join(u64::from(r * per_rack + i + 1), r)).expect("join");
        }
    }
    c
}

fn assert_refused(c: &mut ClusterConfig, cmd: ConfigCommand, want: impl Fn(&ConfigError) -> bool) {
    let before = c.clone();
    let err = apply(c, &cmd).expect_err("command must be refused");
    assert!(want(&err), "unexpected error {err:?} for {cmd:?}");
    assert_eq!(*c, before, "a refused command changed the config");
}

#[test]
fn every_change_raises_the_epoch_by_one() {
    let mut c = cluster(3, 2);
    assert_eq!(c.epoch, 6);
    assert_eq!(apply(&mut c, &ConfigCommand::MarkSuspect { node: NodeId(1) }), Ok(7));
    assert_eq!(c.nodes[&NodeId(1)].state, NodeState::Suspect);
    assert_eq!(c.nodes[&NodeId(1)].state_epoch, 7);
}

#[test]
fn malformed_joins_are_refused_unchanged() {
    let mut c = cluster(3, 1);
    let bad = |f: &dyn Fn(&mut JoinRequest)| {
        let ConfigCommand::Join(mut r) = join(99, 0) else { unreachable!() };
        f(&mut r);
        ConfigCommand::Join(r)
    };
    let malformed = |e: &ConfigError| matches!(e, ConfigError::MalformedJoin { .. });
    assert_refused(&mut c, bad(&|r| r.address.clear()), malformed);
    assert_refused(&mut c, bad(&|r| r.address = "a".repeat(300)), malformed);
    assert_refused(&mut c, bad(&|r| r.address = "host name:1".into()), malformed);
    assert_refused(&mut c, bad(&|r| r.drives.clear()), malformed);
    assert_refused(&mut c, bad(&|r| r.drives = vec![DriveInfo { capacity_bytes: 0 }]), malformed);
    assert_refused(&mut c, bad(&|r| r.weight = 0), malformed);
    assert_refused(&mut c, bad(&|r| r.drives = vec![DriveInfo { capacity_bytes: 1 }; 65]), malformed);
}

#[test]
fn duplicate_node_ids_and_addresses_are_refused_unchanged() {
    let mut c = cluster(3, 1);
    assert_refused(&mut c, join(1, 2), |e| *e == ConfigError::DuplicateNodeId(NodeId(1)));
    let ConfigCommand::Join(mut r) = join(50, 0) else { unreachable!() };
    r.address = c.nodes[&NodeId(2)].address.clone();
    assert_refused(&mut c, ConfigCommand::Join(r), |e| {
        matches!(e, ConfigError::DuplicateAddress { by: NodeId(2), .. })
    });
}

#[test]
fn too_few_failure_domains_for_a_protection_policy_is_refused_unchanged() {
    let mut c = cluster(5, 2);
    let ec = |data, parity| ConfigCommand::CreateFs {
        name: "big".into(),
        protection: Protection::ErasureCoded { data, parity },
        placement: PlacementMode::Hash,
    };
    assert_refused(&mut c, ec(8, 2), |e| *e == ConfigError::NotEnoughFailureDomains { needed: 10, available: 5 });
    assert_refused(&mut c, ec(3, 2), |e| matches!(e, ConfigError::InvalidProtection(_)));
    assert_refused(&mut c, ec(4, 5), |e| matches!(e, ConfigError::InvalidProtection(_)));
    let rep = ConfigCommand::CreateFs {
        name: "default".into(),
        protection: Protection::Replicated { copies: 3 },
        placement: PlacementMode::Hash,
    };
    assert!(apply(&mut c, &rep).is_ok());
    assert_refused(&mut c, rep, |e| *e == ConfigError::FsExists("default".into()));
}

#[test]
fn decommissioning_below_the_needed_failure_domains_is_refused_unchanged() {
    let mut c = cluster(3, 1);
    assert_eq!(c.shard_map.shards.len(), 64, "three racks are enough for R=3");
    assert_refused(&mut c, ConfigCommand::Decommission { node: NodeId(1) }, |e| {
        *e == ConfigError::NotEnoughFailureDomains { needed: 3, available: 2 }
    });
}

#[test]
fn the_failure_detector_is_never_refused_and_keeps_the_map_when_domains_run_out() {
    let mut c = cluster(3, 1);
    let map = c.shard_map.clone();
    assert!(apply(&mut c, &ConfigCommand::MarkDown { node: NodeId(1) }).is_ok());
    assert_eq!(c.nodes[&NodeId(1)].state, NodeState::Down);
    assert_eq!(c.shard_map, map, "with too few racks left the shards stay where they are (degraded)");
}

#[test]
fn a_down_node_loses_its_replicas_and_racks_stay_distinct() {
    let mut c = cluster(4, 2);
    let nodes_before = c.shards_on(NodeId(3)).len();
    assert!(nodes_before > 0);
    apply(&mut c, &ConfigCommand::MarkDown { node: NodeId(3) }).unwrap();
    assert!(c.shards_on(NodeId(3)).is_empty());
    let live: Vec<_> = c
        .nodes
        .values()
        .filter(|n| n.state.holds_replicas())
        .map(|n| placement::PlacementNode { id: n.id, rack: n.rack, weight: n.weight })
        .collect();
    placement::validate(&c.shard_map, &live, 3).expect("valid map");
}

#[test]
fn unknown_nodes_and_invalid_transitions_are_typed_errors() {
    let mut c = cluster(3, 1);
    assert_refused(&mut c, ConfigCommand::MarkDown { node: NodeId(42) }, |e| {
        *e == ConfigError::UnknownNode(NodeId(42))
    });
    assert_refused(&mut c, ConfigCommand::MarkUp { node: NodeId(1) }, |e| {
        matches!(e, ConfigError::InvalidState { .. })
    });
    assert_refused(&mut c, ConfigCommand::Remove { node: NodeId(1) }, |e| {
        matches!(e, ConfigError::InvalidState { .. })
    });
    assert_refused(&mut c, ConfigCommand::DeleteFs { name: "nope".into() }, |e| {
        matches!(e, ConfigError::FsNotFound(_))
    });
    assert_refused(
        &mut c,
        ConfigCommand::CreateFs {
            name: "../x".into(),
            protection: Protection::Replicated { copies: 3 },
            placement: PlacementMode::Hash,
        },
        |e| matches!(e, ConfigError::InvalidFsName { .. }),
    );
}

#[test]
fn replace_swaps_a_node_in_one_change() {
    let mut c = cluster(3, 2);
    apply(&mut c, &ConfigCommand::MarkDown { node: NodeId(1) }).unwrap();
    let ConfigCommand::Join(new) = join(100, 0) else { unreachable!() };
    let epoch = apply(&mut c, &ConfigCommand::Replace { old: NodeId(1), new }).unwrap();
    assert!(!c.nodes.contains_key(&NodeId(1)));
    assert_eq!(c.nodes[&NodeId(100)].state, NodeState::Up);
    assert_eq!(c.epoch, epoch);
}

#[test]
fn a_retried_request_is_applied_once_and_answered_the_same() {
    let mut c = cluster(3, 1);
    let first = apply_request(&mut c, Some(RequestId { client: 9, seq: 1 }), &join(10, 0));
    let epoch = c.epoch;
    let again = apply_request(&mut c, Some(RequestId { client: 9, seq: 1 }), &join(10, 0));
    assert_eq!(first, again);
    assert_eq!(c.epoch, epoch, "the retry changed nothing");
    let refused = apply_request(&mut c, Some(RequestId { client: 9, seq: 2 }), &join(10, 0));
    assert_eq!(refused, Err(ConfigError::DuplicateNodeId(NodeId(10))));
    assert_eq!(apply_request(&mut c, Some(RequestId { client: 9, seq: 2 }), &join(10, 0)), refused);
    let changes: Vec<_> = c.recent_changes.iter().filter(|r| r.request.is_some()).collect();
    assert_eq!(changes.len(), 1, "one change recorded for the request: {changes:?}");
    assert_eq!(changes[0].epoch, epoch);
}
