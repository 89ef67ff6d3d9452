//! Scenario files (TOML): which cluster, network, workloads and faults a campaign's seeds draw from.
//!
//! Every field is optional: an absent field means "the seed chooses" (swarm testing), so the empty file
//! is [`ScenarioSpec::swarm`]. A number field takes a number or an inclusive `[min, max]` range, from which
//! each seed picks. See `faults/scenarios/swarm.toml` for the documented schema; unknown fields are errors.
//!
//! ```toml
//! [cluster]
//! nodes = [3, 64]
//! protection = ["4+2", "3x"]
//! [[workload]]
//! kind = "files"
//! [faults]
//! mode = "safety"
//! [[fault]]
//! kind = "crash"
//! weight = 3
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use tessera_env::Rng;

use crate::kind::FaultKind;

/// The most nodes a scenario may ask for.
pub const MAX_NODES: u64 = 1024;
/// The fewest nodes a scenario may ask for.
pub const MIN_NODES: u64 = 3;
/// The most racks a run may lose for good.
pub const MAX_RACK_LOSSES: u64 = 4;
/// The shortest "longest pause between faults" (the nemesis pauses at least 100 ms).
pub const MIN_INTERVAL_MS: u64 = 100;
/// The largest fault weight.
pub const MAX_WEIGHT: u32 = 100;

/// A scenario file, parsed and validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioSpec {
    /// The `name` field, or the file's stem.
    pub name: String,
    pub description: Option<String>,
    pub cluster: ClusterSpec,
    pub net: NetSpec,
    /// The `[[workload]]` tables; empty: the seed chooses.
    #[serde(rename = "workload")]
    pub workloads: Vec<WorkloadSpec>,
    pub faults: FaultsSpec,
    /// The `[[fault]]` tables; empty: the seed chooses the mix.
    #[serde(rename = "fault")]
    pub fault_mix: Vec<FaultSpec>,
}

/// The `[cluster]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub nodes: Option<IntRange>,
    /// Failure domains.
    pub racks: Option<IntRange>,
    /// The protections a seed chooses from (a single string is a one-element list).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub protection: Option<Vec<ProtectionSpec>>,
    /// Metadata shards.
    pub shards: Option<IntRange>,
    /// Replicas of each metadata shard (odd).
    pub meta_replicas: Option<IntRange>,
}

/// The `[net]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// The longest one-way latency of a message, in microseconds.
    pub latency_us_max: Option<IntRange>,
    /// Background message loss, per million messages.
    pub loss_per_million: Option<IntRange>,
    /// Background message duplication, per million messages.
    pub duplicate_per_million: Option<IntRange>,
}

/// One `[[workload]]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub clients: Option<IntRange>,
    pub ops_per_client: Option<IntRange>,
}

/// What a workload does and checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Data written, overwritten, truncated, read back and checked.
    Files,
    /// POSIX namespace operations checked for linearizability.
    Namespace,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 2] = [WorkloadKind::Files, WorkloadKind::Namespace];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Files => "files",
            WorkloadKind::Namespace => "namespace",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[faults]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    #[serde(default)]
    pub mode: FaultMode,
    /// Whether the code's own fault points (BUGGIFY) fire.
    #[serde(default = "yes")]
    pub buggify: bool,
    /// The longest pause between two faults, in milliseconds.
    pub interval_ms_max: Option<IntRange>,
    /// Racks lost for good during the run.
    pub rack_losses: Option<IntRange>,
}

fn yes() -> bool {
    true
}

impl Default for FaultsSpec {
    fn default() -> FaultsSpec {
        FaultsSpec { mode: FaultMode::Safety, buggify: true, interval_ms_max: None, rack_losses: None }
    }
}

/// How far the faults go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultMode {
    /// Stay within the protection's budget: every acknowledged byte must survive.
    #[default]
    Safety,
    /// Lose one failure domain more than the protection tolerates: reads must be exact or fail cleanly.
    OverBudget,
}

impl FaultMode {
    pub fn name(self) -> &'static str {
        match self {
            FaultMode::Safety => "safety",
            FaultMode::OverBudget => "over-budget",
        }
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[[fault]]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Relative frequency 1..=100; `None`: the seed chooses.
    pub weight: Option<u32>,
}

/// An inclusive range of integers: a number `n` (just `n`) or `[min, max]` in a scenario file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntRange {
    pub min: u64,
    pub max: u64,
}

impl IntRange {
    pub const fn new(min: u64, max: u64) -> IntRange {
        IntRange { min, max }
    }

    pub const fn exactly(n: u64) -> IntRange {
        IntRange { min: n, max: n }
    }

    /// A value uniform in `min..=max`.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        rng.range_inclusive(self.min, self.max)
    }

    /// An odd value uniform among the odd values of `min..=max` (`min` if there is none).
    pub fn pick_odd(&self, rng: &mut impl Rng) -> u64 {
        let first = self.min | 1;
        if first > self.max {
            return self.min;
        }
        let last = if self.max % 2 == 1 { self.max } else { self.max - 1 };
        first + 2 * rng.range_inclusive(0, (last - first) / 2)
    }

    pub fn contains(&self, value: u64) -> bool {
        self.min <= value && value <= self.max
    }
}

impl fmt::Display for IntRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max { write!(f, "{}", self.min) } else { write!(f, "[{}, {}]", self.min, self.max) }
    }
}

impl Serialize for IntRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            serializer.serialize_u64(self.min)
        } else {
            [self.min, self.max].serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for IntRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IntRange, D::Error> {
        struct RangeVisitor;

        impl<'de> Visitor<'de> for RangeVisitor {
            type Value = IntRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or a [min, max] array of two")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IntRange, E> {
                Ok(IntRange::exactly(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IntRange, E> {
                u64::try_from(n)
                    .map(IntRange::exactly)
                    .map_err(|_| E::custom(format!("{n} is negative: expected a non-negative integer")))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IntRange, A::Error> {
                let two = || de::Error::custom("expected a [min, max] array of exactly two integers");
                let min: u64 = seq.next_element()?.ok_or_else(two)?;
                let max: u64 = seq.next_element()?.ok_or_else(two)?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(two());
                }
                Ok(IntRange { min, max })
            }
        }

        deserializer.deserialize_any(RangeVisitor)
    }
}

/// How a file's chunks are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtectionSpec {
    /// `N+K`: `data` chunks (2..=16) and `parity` chunks (1..=4), each in its own failure domain.
    ErasureCoded { data: u8, parity: u8 },
    /// `Cx`: `copies` (2..=5) whole copies, each in its own failure domain.
    Replicated { copies: u8 },
}

impl ProtectionSpec {
    /// The failure domains (racks) a stripe spreads over: `N + K`, or `C`.
    pub fn failure_domains_needed(&self) -> u64 {
        match *self {
            ProtectionSpec::ErasureCoded { data, parity } => u64::from(data) + u64::from(parity),
            ProtectionSpec::Replicated { copies } => u64::from(copies),
        }
    }

    /// The failure domains a stripe may lose and still be read: `K`, or `C - 1`.
    pub fn tolerated(&self) -> u64 {
        match *self {
            ProtectionSpec::ErasureCoded { parity, .. } => u64::from(parity),
            ProtectionSpec::Replicated { copies } => u64::from(copies) - 1,
        }
    }
}

impl fmt::Display for ProtectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectionSpec::ErasureCoded { data, parity } => write!(f, "{data}+{parity}"),
            ProtectionSpec::Replicated { copies } => write!(f, "{copies}x"),
        }
    }
}

impl FromStr for ProtectionSpec {
    type Err = String;

    /// `N+K` (erasure coding, N 2..=16, K 1..=4) or `Cx` (replication, C 2..=5).
    fn from_str(text: &str) -> Result<ProtectionSpec, String> {
        let bad = |why: &str| format!("protection {text:?}: {why}");
        let number = |part: &str| -> Option<u8> {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok()).flatten()
        };
        if let Some((n, k)) = text.split_once('+') {
            let (Some(data), Some(parity)) = (number(n), number(k)) else {
                return Err(bad("expected N+K with two numbers, e.g. 4+2"));
            };
            if !(2..=16).contains(&data) {
                return Err(bad(&format!("{data} data chunks: erasure coding takes 2..=16")));
            }
            if !(1..=4).contains(&parity) {
                return Err(bad(&format!("{parity} parity chunks: erasure coding takes 1..=4")));
            }
            Ok(ProtectionSpec::ErasureCoded { data, parity })
        } else if let Some(c) = text.strip_suffix('x') {
            let Some(copies) = number(c) else {
                return Err(bad("expected Cx with a number of copies, e.g. 3x"));
            };
            if !(2..=5).contains(&copies) {
                return Err(bad(&format!("{copies} copies: replication takes 2..=5")));
            }
            Ok(ProtectionSpec::Replicated { copies })
        } else {
            Err(bad("expected N+K (erasure coding, e.g. 4+2) or Cx (replication, e.g. 3x)"))
        }
    }
}

impl Serialize for ProtectionSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProtectionSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProtectionSpec, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A protection string, or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<ProtectionSpec>>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<ProtectionSpec>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a protection (\"4+2\", \"3x\") or a list of them")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(vec![text.parse().map_err(E::custom)?])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(p) = seq.next_element()? {
                all.push(p);
            }
            Ok(all)
        }
    }

    deserializer.deserialize_any(OneOrMany).map(Some)
}

/// Why a scenario file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read the scenario file: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Bad TOML, an unknown field, a value of the wrong type.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A field whose value does not make sense.
    #[error("{origin}: {field}: {message}")]
    Invalid { origin: String, field: String, message: String },
}

/// The file as written (`name` optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    cluster: ClusterSpec,
    #[serde(default)]
    net: NetSpec,
    #[serde(default, rename = "workload")]
    workloads: Vec<WorkloadSpec>,
    #[serde(default)]
    faults: FaultsSpec,
    #[serde(default, rename = "fault")]
    fault_mix: Vec<FaultSpec>,
}

impl ScenarioSpec {
    /// The default scenario: everything chosen by the seed.
    pub fn swarm() -> ScenarioSpec {
        ScenarioSpec {
            name: "swarm".to_string(),
            description: None,
            cluster: ClusterSpec::default(),
            net: NetSpec::default(),
            workloads: Vec::new(),
            faults: FaultsSpec::default(),
            fault_mix: Vec::new(),
        }
    }

    /// Parse and validate `text`; `default_name` names the scenario if it has no `name` field, and names
    /// it in error messages.
    pub fn parse(text: &str, default_name: &str) -> Result<ScenarioSpec, ScenarioError> {
        ScenarioSpec::parse_from(text, default_name, default_name)
    }

    /// Read, parse and validate the file at `path` (named after its stem unless it has a `name` field).
    pub fn load(path: &Path) -> Result<ScenarioSpec, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_path_buf(), source })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        ScenarioSpec::parse_from(&text, &stem, &path.display().to_string())
    }

    fn parse_from(text: &str, default_name: &str, origin: &str) -> Result<ScenarioSpec, ScenarioError> {
        let raw: RawScenario = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse { origin: origin.to_string(), message: e.to_string() })?;
        let spec = ScenarioSpec {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            description: raw.description,
            cluster: raw.cluster,
            net: raw.net,
            workloads: raw.workloads,
            faults: raw.faults,
            fault_mix: raw.fault_mix,
        };
        spec.validate().map_err(|(field, message)| ScenarioError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        })?;
        Ok(spec)
    }

    /// Check the fields against each other: `Err((field, what is wrong))`.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: String| Err((field.to_string(), message));
        if self.name.trim().is_empty() {
            return fail("name", "must not be empty".to_string());
        }

        let c = &self.cluster;
        let ranges = [
            ("cluster.nodes", c.nodes),
            ("cluster.racks", c.racks),
            ("cluster.shards", c.shards),
            ("cluster.meta_replicas", c.meta_replicas),
            ("net.latency_us_max", self.net.latency_us_max),
            ("net.loss_per_million", self.net.loss_per_million),
            ("net.duplicate_per_million", self.net.duplicate_per_million),
            ("faults.interval_ms_max", self.faults.interval_ms_max),
            ("faults.rack_losses", self.faults.rack_losses),
        ];
        for (field, range) in ranges {
            if let Some(r) = range
                && r.min > r.max
            {
                return fail(field, format!("min {} is above max {}", r.min, r.max));
            }
        }
        for (i, w) in self.workloads.iter().enumerate() {
            for (name, range) in [("clients", w.clients), ("ops_per_client", w.ops_per_client)] {
                if let Some(r) = range
                    && r.min > r.max
                {
                    return fail(&format!("workload[{i}].{name}"), format!("min {} is above max {}", r.min, r.max));
                }
            }
        }

        if let Some(nodes) = c.nodes
            && (nodes.min < MIN_NODES || nodes.max > MAX_NODES)
        {
            return fail("cluster.nodes", format!("{nodes} is outside {MIN_NODES}..={MAX_NODES}"));
        }
        if let Some(racks) = c.racks {
            if racks.min < 1 {
                return fail("cluster.racks", "a cluster needs at least 1 rack".to_string());
            }
            if let Some(nodes) = c.nodes
                && racks.min > nodes.max
            {
                return fail(
                    "cluster.racks",
                    format!("at least {} racks but at most {} nodes (each rack needs a node)", racks.min, nodes.max),
                );
            }
        }
        if let Some(protections) = &c.protection {
            let Some(smallest) = protections.iter().min_by_key(|p| p.failure_domains_needed()) else {
                return fail(
                    "cluster.protection",
                    "lists no protection (remove it to let the seed choose)".to_string(),
                );
            };
            let mut seen = BTreeSet::new();
            for p in protections {
                if !seen.insert(p) {
                    return fail("cluster.protection", format!("{p} is listed twice"));
                }
            }
            let needed = smallest.failure_domains_needed();
            if let Some(racks) = c.racks
                && racks.max < needed
            {
                return fail(
                    "cluster.racks",
                    format!(
                        "at most {} racks, but the smallest protection listed ({smallest}) needs {needed} failure domains",
                        racks.max
                    ),
                );
            }
            if let Some(nodes) = c.nodes
                && nodes.max < needed
            {
                return fail(
                    "cluster.nodes",
                    format!(
                        "at most {} nodes, but the smallest protection listed ({smallest}) needs {needed} failure domains",
                        nodes.max
                    ),
                );
            }
        }
        if let Some(shards) = c.shards
            && shards.min < 1
        {
            return fail("cluster.shards", "at least 1 metadata shard is needed".to_string());
        }
        if let Some(replicas) = c.meta_replicas {
            if replicas.min % 2 == 0 || replicas.max % 2 == 0 {
                return fail("cluster.meta_replicas", format!("{replicas}: each end must be odd (1, 3, 5, ...)"));
            }
            if let Some(nodes) = c.nodes
                && replicas.min > nodes.max
            {
                return fail(
                    "cluster.meta_replicas",
                    format!("at least {} replicas but at most {} nodes", replicas.min, nodes.max),
                );
            }
        }

        for (field, range) in [
            ("net.loss_per_million", self.net.loss_per_million),
            ("net.duplicate_per_million", self.net.duplicate_per_million),
        ] {
            if let Some(r) = range
                && r.max > 1_000_000
            {
                return fail(field, format!("{} is more than a million per million", r.max));
            }
        }

        let mut kinds = BTreeSet::new();
        for (i, w) in self.workloads.iter().enumerate() {
            if !kinds.insert(w.kind) {
                return fail(&format!("workload[{i}].kind"), format!("{} is listed twice", w.kind));
            }
            if let Some(r) = w.clients
                && r.min < 1
            {
                return fail(&format!("workload[{i}].clients"), "a workload needs at least 1 client".to_string());
            }
            if let Some(r) = w.ops_per_client
                && r.min < 1
            {
                return fail(&format!("workload[{i}].ops_per_client"), "each client needs at least 1 op".to_string());
            }
        }

        let f = &self.faults;
        if let Some(r) = f.interval_ms_max
            && r.min < MIN_INTERVAL_MS
        {
            return fail(
                "faults.interval_ms_max",
                format!("{} ms is below {MIN_INTERVAL_MS} ms (the shortest pause between faults)", r.min),
            );
        }
        if let Some(r) = f.rack_losses {
            if r.max > MAX_RACK_LOSSES {
                return fail("faults.rack_losses", format!("{} racks lost: at most {MAX_RACK_LOSSES}", r.max));
            }
            if r.min > 0 && !self.fault_mix.is_empty() && !self.fault_mix.iter().any(|s| s.kind == FaultKind::RackLoss)
            {
                return fail(
                    "faults.rack_losses",
                    format!("at least {} racks lost, but the [[fault]] list has no rack-loss", r.min),
                );
            }
            if f.mode == FaultMode::Safety
                && let Some(protections) = &c.protection
                && let Some(most) = protections.iter().map(ProtectionSpec::tolerated).max()
                && r.min > most
            {
                return fail(
                    "faults.rack_losses",
                    format!(
                        "at least {} racks lost in safety mode, but no protection listed tolerates more than {most}",
                        r.min
                    ),
                );
            }
        }
        if f.mode == FaultMode::OverBudget && c.protection.is_none() {
            return fail(
                "faults.mode",
                "over-budget needs cluster.protection to list at least one protection (the budget to exceed)"
                    .to_string(),
            );
        }

        let mut kinds = BTreeSet::new();
        for (i, s) in self.fault_mix.iter().enumerate() {
            if !kinds.insert(s.kind) {
                return fail(&format!("fault[{i}].kind"), format!("{} is listed twice", s.kind.name()));
            }
            if let Some(w) = s.weight
                && !(1..=MAX_WEIGHT).contains(&w)
            {
                return fail(&format!("fault[{i}].weight"), format!("{w} is outside 1..={MAX_WEIGHT}"));
            }
        }
        Ok(())
    }

    /// The `[[workload]]` of `kind`, if listed.
    pub fn workload(&self, kind: WorkloadKind) -> Option<&WorkloadSpec> {
        self.workloads.iter().find(|w| w.kind == kind)
    }

    /// The `[[fault]]` list as (kind, weight) pairs (what `FaultMix::of` takes); empty: the seed chooses.
    pub fn fault_weights(&self) -> Vec<(FaultKind, Option<u32>)> {
        self.fault_mix.iter().map(|s| (s.kind, s.weight)).collect()
    }
}

#[cfg(test)]
mod tests {
    use tessera_env::DetRng;

    use super::*;

    #[test]
    fn int_range_picks_inside() {
        let mut rng = DetRng::from_seed(7);
        let r = IntRange::new(3, 9);
        let mut seen = BTreeSet::new();
        for _ in 0..500 {
            let v = r.pick(&mut rng);
            assert!(r.contains(v));
            seen.insert(v);
        }
        assert_eq!(seen.len(), 7);
        let mut odd = BTreeSet::new();
        for _ in 0..200 {
            odd.insert(IntRange::new(2, 8).pick_odd(&mut rng));
        }
        assert_eq!(odd.into_iter().collect::<Vec<_>>(), vec![3, 5, 7]);
        assert_eq!(IntRange::exactly(5).pick_odd(&mut rng), 5);
        assert_eq!(IntRange::exactly(u64::MAX).pick(&mut rng), u64::MAX);
        assert_eq!(IntRange::exactly(u64::MAX).pick_odd(&mut rng), u64::MAX);
        assert!(!r.contains(2) && !r.contains(10));
    }

    #[test]
    fn protections() {
        let p: ProtectionSpec = "4+2".parse().unwrap();
        assert_eq!(p, ProtectionSpec::ErasureCoded { data: 4, parity: 2 });
        assert_eq!((p.failure_domains_needed(), p.tolerated()), (6, 2));
        let p: ProtectionSpec = "3x".parse().unwrap();
        assert_eq!((p.failure_domains_needed(), p.tolerated()), (3, 2));
        assert_eq!(p.to_string(), "3x");
        assert_eq!("16+4".parse::<ProtectionSpec>().unwrap().to_string(), "16+4");
        for bad in ["1+1", "17+2", "4+0", "4+5", "1x", "6x", "x", "+", "4+", "+2", "4 + 2", "3X", "300+2", "-1x", ""] {
            let e = bad.parse::<ProtectionSpec>().unwrap_err();
            assert!(e.contains("protection"), "{bad}: {e}");
        }
    }
}
