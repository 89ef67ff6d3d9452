//! Checker for histories of config changes: linearizable, at most once, nothing refused applied.
//!
//! The config service applies changes one at a time and stamps each with the next epoch, so a correct
//! history has a simple shape: the applied changes form one sequence of consecutive epochs, every
//! change a client saw acknowledged sits in that sequence at exactly the epoch it was told, no request
//! appears twice, nothing a client saw refused appears at all, and the sequence respects real time: a
//! change acknowledged before another was requested has the smaller epoch.

use std::collections::BTreeMap;

use tessera_config::{ChangeRecord, RequestId};

/// What the client saw for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged as applied, creating this epoch.
    Applied(u64),
    /// Refused with a typed error: the config must not contain it.
    Refused(String),
    /// No answer (timeouts): it may or may not have been applied.
    Unknown,
}

/// One client request, with the virtual times it was issued and answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub request: RequestId,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    pub summary: String,
}

/// Check `ops` against the change history `changes` (oldest first) of a config whose epoch is
/// `final_epoch`. `changes` must reach back to epoch 1 (the scenario keeps fewer changes than the
/// config remembers). Returns every violation found.
pub fn check(changes: &[ChangeRecord], final_epoch: u64, ops: &[OpRecord]) -> Vec<String> {
    let mut v = Vec::new();
    // One sequence of consecutive epochs, ending at the config's epoch.
    for (i, c) in changes.iter().enumerate() {
        if c.epoch != i as u64 + 1 {
            v.push(format!("change history not consecutive: position {i} holds epoch {}", c.epoch));
            break;
        }
    }
    if changes.last().map_or(0, |c| c.epoch) != final_epoch {
        v.push(format!("change history ends before the config's epoch {final_epoch}"));
    }
    // At most once.
    let mut by_request: BTreeMap<RequestId, u64> = BTreeMap::new();
    for c in changes {
        if let Some(r) = c.request
            && let Some(first) = by_request.insert(r, c.epoch)
        {
            v.push(format!("request {r:?} applied twice, at epochs {first} and {}", c.epoch));
        }
    }
    // Acknowledged where told; refused nowhere.
    for op in ops {
        match &op.outcome {
            Outcome::Applied(epoch) => match by_request.get(&op.request) {
                Some(e) if e == epoch => {}
                Some(e) => v.push(format!(
                    "{:?} ({}) acknowledged at epoch {epoch} but applied at {e}",
                    op.request, op.summary
                )),
                None => v.push(format!(
                    "{:?} ({}) acknowledged at epoch {epoch} but not in the history",
                    op.request, op.summary
                )),
            },
            Outcome::Refused(err) => {
                if let Some(e) = by_request.get(&op.request) {
                    v.push(format!("{:?} ({}) refused ({err}) yet applied at epoch {e}", op.request, op.summary));
                }
            }
            Outcome::Unknown => {}
        }
    }
    // Real time: acknowledged before requested => smaller epoch.
    let mut applied: Vec<(&OpRecord, u64)> =
        ops.iter().filter_map(|op| if let Outcome::Applied(e) = op.outcome { Some((op, e)) } else { None }).collect();
    applied.sort_by_key(|(op, _)| op.complete_ns);
    for (i, (a, ea)) in applied.iter().enumerate() {
        for (b, eb) in &applied[i + 1..] {
            if a.complete_ns < b.invoke_ns && ea >= eb {
                v.push(format!(
                    "not linearizable: {:?} ({}) acknowledged at epoch {ea} before {:?} ({}) was requested, which got epoch {eb}",
                    a.request, a.summary, b.request, b.summary
                ));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(epoch: u64, client: u64, seq: u64) -> ChangeRecord {
        ChangeRecord { epoch, request: Some(RequestId { client, seq }), summary: String::new() }
    }

    fn op(client: u64, seq: u64, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> OpRecord {
        OpRecord { request: RequestId { client, seq }, invoke_ns, complete_ns, outcome, summary: String::new() }
    }

    #[test]
    fn a_correct_history_passes() {
        let changes = [change(1, 1, 1), change(2, 2, 1), change(3, 1, 2)];
        let ops = [
            op(1, 1, 0, 10, Outcome::Applied(1)),
            op(2, 1, 5, 30, Outcome::Applied(2)),
            op(1, 2, 20, 40, Outcome::Applied(3)),
            op(2, 2, 31, 50, Outcome::Refused("exists".into())),
        ];
        assert!(check(&changes, 3, &ops).is_empty());
    }

    #[test]
    fn each_kind_of_violation_is_reported() {
        let twice = [change(1, 1, 1), change(2, 1, 1)];
        assert_eq!(check(&twice, 2, &[]).len(), 1);
        let gap = [change(1, 1, 1), change(3, 1, 2)];
        assert_eq!(check(&gap, 3, &[]).len(), 1);
        let changes = [change(1, 1, 1), change(2, 2, 1)];
        let wrong_epoch = [op(1, 1, 0, 10, Outcome::Applied(2))];
        assert_eq!(check(&changes, 2, &wrong_epoch).len(), 1);
        let refused_but_applied = [op(2, 1, 0, 10, Outcome::Refused("x".into()))];
        assert_eq!(check(&changes, 2, &refused_but_applied).len(), 1);
        let lost = [op(3, 1, 0, 10, Outcome::Applied(2))];
        assert!(!check(&changes, 2, &lost).is_empty());
        // Acknowledged at epoch 2 before the other was requested, which got epoch 1.
        let stale = [op(2, 1, 0, 10, Outcome::Applied(2)), op(1, 1, 20, 30, Outcome::Applied(1))];
        assert_eq!(check(&changes, 2, &stale).len(), 1);
    }
}
