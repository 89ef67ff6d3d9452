//! The campaign runner: one simulation seed per child process, `jobs` at a time, and a summary.
//!
//! Each child prints, as its last stdout line starting with `seed=`, a result line:
//!
//! ```text
//! seed=S trace_hash=HEX result=pass|fail [key=value]... [reason="..."] [replay="..."]
//! ```
//!
//! Values may be quoted with `"` (inside, `\"` and `\\` are the only escapes). An unquoted value that is a
//! plain unsigned integer is a metric (summed into the campaign's totals); an unquoted value of the form
//! `name:count,name:count` is a count map (summed per name under its key). Anything else is kept as text.
//!
//! A child that exits without a result line, exits non-zero after a pass line, prints a line that does not
//! parse, or runs past the per-seed timeout (it is killed) fails its seed. Failures are written to the
//! caller's output as they happen (`FAIL seed=S: reason` and `  replay: command`), a progress bar or
//! progress lines go to stderr, and at the end an optional JSON summary is written and a final line
//! `<label> seeds=N passed=P failed=F`.
//!
//! Everything is bounded: a child's stdout is read line by line, keeping only the last result line and the
//! last few KiB of other output; its stderr keeps only its last few KiB.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How much of a child's stderr (and of its stdout besides the result line) is kept, in bytes.
const TAIL_BYTES: usize = 4096;
/// The longest stdout line kept whole; the rest of a longer line is dropped.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How many trailing lines of stderr (or stdout) a failure's reason quotes.
const CONTEXT_LINES: usize = 3;
/// How long to wait for a child's output to close once it has exited or been killed (a grandchild may
/// hold the pipes open; its readers are then left to finish on their own).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// The bar is redrawn at most this often.
const BAR_INTERVAL: Duration = Duration::from_millis(200);
/// Without a terminal, a progress line is printed at each 5% step or after this long.
const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// Where progress goes (always stderr) and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgressMode {
    /// A bar redrawn in place if stderr is a terminal, otherwise [`ProgressMode::Lines`].
    #[default]
    Auto,
    /// A plain line at each 5% step, or every 30 s.
    Lines,
    /// Nothing.
    Off,
}

impl FromStr for ProgressMode {
    type Err = String;

    /// `auto`, `lines` or `off`.
    fn from_str(text: &str) -> Result<ProgressMode, String> {
        match text {
            "auto" => Ok(ProgressMode::Auto),
            "lines" => Ok(ProgressMode::Lines),
            "off" => Ok(ProgressMode::Off),
            other => Err(format!("unknown progress mode {other:?}: expected auto, lines or off")),
        }
    }
}

/// What to run and how.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Names the campaign in progress, the final line and the JSON summary (e.g. `campaign`).
    pub label: String,
    /// The seeds to run, in this order.
    pub seeds: Range<u64>,
    /// How many children run at once (at least 1).
    pub jobs: usize,
    /// Wall-clock limit per child in seconds: a child over it is killed and its seed fails. 0: no limit.
    pub seed_timeout_s: u64,
    /// Where to write the JSON summary (parent directories are created).
    pub json_path: Option<PathBuf>,
    pub progress: ProgressMode,
}

impl CampaignConfig {
    /// `seeds` under `label` with the defaults: one job per available core, 600 s per seed, no JSON
    /// summary, automatic progress.
    pub fn new(label: impl Into<String>, seeds: Range<u64>) -> CampaignConfig {
        CampaignConfig {
            label: label.into(),
            seeds,
            jobs: available_cores(),
            seed_timeout_s: 600,
            json_path: None,
            progress: ProgressMode::Auto,
        }
    }
}

/// The seeds a campaign covered, `start..end` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

/// One failed seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedFailure {
    pub seed: u64,
    pub reason: String,
    /// A shell command that reruns the seed.
    pub replay: String,
}

/// One seed's outcome, compactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRecord {
    pub seed: u64,
    pub passed: bool,
    /// As the child printed it; absent when it printed no (parseable) result line.
    pub trace_hash: Option<String>,
}

/// What a campaign found; also its JSON summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub label: String,
    pub seed_range: SeedRange,
    pub jobs: usize,
    pub seeds_run: u64,
    pub passed: u64,
    pub failed: u64,
    pub wall_time_s: f64,
    /// Seeds per minute of wall time per core used (`min(jobs, available cores)`).
    pub seeds_per_min_per_core: f64,
    /// Sorted by seed.
    pub failures: Vec<SeedFailure>,
    /// Every metric (`key=<unsigned integer>`) summed over the seeds' result lines.
    pub totals: BTreeMap<String, u64>,
    /// Every count map (`key=name:count,...`) summed per name over the seeds' result lines.
    pub count_maps: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sorted by seed.
    pub seeds: Vec<SeedRecord>,
}

impl CampaignSummary {
    /// Whether every seed that ran passed.
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    /// The final line: `<label> seeds=N passed=P failed=F`.
    pub fn final_line(&self) -> String {
        format!("campaign seeds={} passed={} failed={}", self.seeds_run, self.passed, self.failed)
    }
}

/// A child's result line, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultLine {
    pub seed: u64,
    /// The `trace_hash` value as printed (hex digits), if present.
    pub trace_hash: Option<String>,
    /// `result=pass` (true) or `result=fail` (false).
    pub passed: bool,
    pub reason: Option<String>,
    pub replay: Option<String>,
    /// Unquoted plain unsigned integer values.
    pub metrics: BTreeMap<String, u64>,
    /// Unquoted `name:count,name:count` values (a name repeated within one value is summed).
    pub count_maps: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every other value, unescaped.
    pub other: BTreeMap<String, String>,
}

/// Parse a result line (see the module documentation). Keys are unique; `seed` (decimal) and `result`
/// (`pass` or `fail`) are required; `trace_hash` (1 to 16 hex digits) is optional.
pub fn parse_result_line(line: &str) -> Result<ResultLine, String> {
    let pairs = split_pairs(line)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut parsed = ResultLine::default();
    let (mut seed, mut result) = (None, None);
    for (key, value, quoted) in pairs {
        if !seen.insert(key.clone()) {
            return Err(format!("key {key:?} appears twice"));
        }
        match key.as_str() {
            "seed" => {
                let s = value.parse::<u64>().map_err(|_| format!("seed={value:?} is not a seed number"))?;
                seed = Some(s);
            }
            "trace_hash" => {
                if value.is_empty() || value.len() > 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("trace_hash={value:?} is not 1 to 16 hex digits"));
                }
                parsed.trace_hash = Some(value);
            }
            "result" => match value.as_str() {
                "pass" => result = Some(true),
                "fail" => result = Some(false),
                _ => return Err(format!("result={value:?}: expected pass or fail")),
            },
            "reason" => parsed.reason = Some(value),
            "replay" => parsed.replay = Some(value),
            _ => {
                if !quoted && let Some(n) = parse_metric(&value) {
                    parsed.metrics.insert(key, n);
                } else if !quoted && let Some(map) = parse_count_map(&value) {
                    parsed.count_maps.insert(key, map);
                } else {
                    parsed.other.insert(key, value);
                }
            }
        }
    }
    parsed.seed = seed.ok_or("no seed= field")?;
    parsed.passed = result.ok_or("no result= field")?;
    Ok(parsed)
}

/// Split `key=value key="quoted \"value\"" ...` into (key, unescaped value, quoted).
fn split_pairs(line: &str) -> Result<Vec<(String, String, bool)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next() != Some('=') {
            return Err(format!("{key:?} is not of the form key=value"));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(format!("bad key {key:?} (expected letters, digits, '_', '-' or '.')"));
        }
        let mut value = String::new();
        let quoted = chars.next_if_eq(&'"').is_some();
        if quoted {
            loop {
                match chars.next() {
                    None => return Err(format!("the value of {key} has no closing quote")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => value.push(c),
                        Some(c) => return Err(format!("the value of {key} has an unknown escape \\{c}")),
                        None => return Err(format!("the value of {key} ends in a lone backslash")),
                    },
                    Some(c) => value.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!("the quoted value of {key} is followed by more text without a space"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '"' {
                    return Err(format!("the value of {key} has a quote inside an unquoted value"));
                }
                value.push(c);
            }
        }
        pairs.push((key, value, quoted));
    }
}

fn parse_metric(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn parse_count_map(value: &str) -> Option<BTreeMap<String, u64>> {
    let mut map = BTreeMap::new();
    for item in value.split(',') {
        let (name, count) = item.split_once(':')?;
        if name.is_empty() || name.contains(':') {
            return None;
        }
        let count = parse_metric(count)?;
        let sum: &mut u64 = map.entry(name.to_string()).or_default();
        *sum = sum.saturating_add(count);
    }
    Some(map)
}

/// Parse a seed range: `A..B` (B exclusive), `A..=B` (B inclusive) or `N` (just N).
pub fn parse_seed_range(text: &str) -> Result<Range<u64>, String> {
    let text = text.trim();
    let number = |part: &str, what: &str| -> Result<u64, String> {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("seed range {text:?}: the {what} is missing (expected A..B, A..=B or N)"));
        }
        part.parse::<u64>().map_err(|e| {
            if part.bytes().all(|b| b.is_ascii_digit()) {
                format!("seed range {text:?}: the {what} {part} does not fit in 64 bits")
            } else {
                format!("seed range {text:?}: the {what} {part:?} is not a seed number ({e})")
            }
        })
    };
    if text.is_empty() {
        return Err("empty seed range (expected A..B, A..=B or N)".to_string());
    }
    if let Some((a, b)) = text.split_once("..=") {
        let (start, last) = (number(a, "start")?, number(b, "end")?);
        if last < start {
            return Err(format!("seed range {text:?} is empty: the end {last} is below the start {start}"));
        }
        let end = last
            .checked_add(1)
            .ok_or_else(|| format!("seed range {text:?}: the end {last} is the largest seed, which cannot be run"))?;
        Ok(start..end)
    } else if let Some((a, b)) = text.split_once("..") {
        let (start, end) = (number(a, "start")?, number(b, "end")?);
        if end <= start {
            return Err(format!(
                "seed range {text:?} is empty: the end {end} is exclusive and not above the start {start} \
                 (use {start}..={end} to include it)"
            ));
        }
        Ok(start..end)
    } else {
        let seed = number(text, "seed")?;
        let end = seed
            .checked_add(1)
            .ok_or_else(|| format!("seed range {text:?}: {seed} is the largest seed, which cannot be run"))?;
        Ok(seed..end)
    }
}

/// The number of cores the process may use (1 if unknown).
pub fn available_cores() -> usize {
    thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Run every seed of `config.seeds` as a child process built by `command`, `config.jobs` at a time.
/// Failures are written to `out` as they happen, then the final line; progress goes to stderr.
/// Errors: `jobs` is 0, or writing to `out` or the JSON summary failed.
pub fn run_campaign(
    config: &CampaignConfig,
    command: &(dyn Fn(u64) -> Command + Sync),
    out: &mut dyn Write,
) -> io::Result<CampaignSummary> {
    if config.jobs == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: jobs must be at least 1", config.label)));
    }
    let started = Instant::now();
    let range = config.seeds.clone();
    let total = range.end.saturating_sub(range.start);
    let workers = usize::try_from(total).unwrap_or(usize::MAX).min(config.jobs);
    let next = AtomicU64::new(range.start);
    let stop = AtomicBool::new(false);
    let timeout = (config.seed_timeout_s > 0).then(|| Duration::from_secs(config.seed_timeout_s));
    let mut progress = Progress::new(config.progress, &config.label, total, started);
    let mut tally = Tally::default();
    let mut write_error = None;

    thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<SeedOutcome>();
        for _ in 0..workers {
            let (tx, next, stop) = (tx.clone(), &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(seed) =
                        next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| (s < range.end).then(|| s + 1))
                    else {
                        break;
                    };
                    if tx.send(run_seed(seed, command, timeout)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(BAR_INTERVAL) {
                Ok(outcome) => {
                    if let Some(failure) = &outcome.failure
                        && write_error.is_none()
                    {
                        progress.clear();
                        let written = writeln!(out, "FAIL seed={}: {}", failure.seed, failure.reason)
                            .and_then(|()| writeln!(out, "  replay: {}", failure.replay))
                            .and_then(|()| out.flush());
                        if let Err(e) = written {
                            write_error = Some(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    tally.add(outcome);
                    progress.update(tally.passed + tally.failed, tally.passed, tally.failed, false);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress.update(tally.passed + tally.failed, tally.passed, tally.failed, false)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    progress.finish(tally.passed + tally.failed, tally.passed, tally.failed);
    if let Some(e) = write_error {
        return Err(e);
    }

    let summary = tally.summarize(config, started.elapsed());
    if let Some(path) = &config.json_path {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(&summary).map_err(io::Error::other)?;
        std::fs::write(path, json + "\n")?;
    }
    writeln!(out, "{}", summary.final_line())?;
    out.flush()?;
    Ok(summary)
}

/// One seed's outcome as a worker reports it.
#[derive(Debug)]
struct SeedOutcome {
    seed: u64,
    trace_hash: Option<String>,
    /// Absent: the seed passed.
    failure: Option<SeedFailure>,
    metrics: BTreeMap<String, u64>,
    count_maps: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The running totals of a campaign.
#[derive(Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<SeedFailure>,
    totals: BTreeMap<String, u64>,
    count_maps: BTreeMap<String, BTreeMap<String, u64>>,
    seeds: Vec<SeedRecord>,
}

impl Tally {
    fn add(&mut self, outcome: SeedOutcome) {
        let passed = outcome.failure.is_none();
        if let Some(failure) = outcome.failure {
            self.failed += 1;
            self.failures.push(failure);
        } else {
            self.passed += 1;
        }
        for (key, n) in outcome.metrics {
            let sum = self.totals.entry(key).or_default();
            *sum = sum.saturating_add(n);
        }
        for (key, map) in outcome.count_maps {
            let sums = self.count_maps.entry(key).or_default();
            for (name, n) in map {
                let sum = sums.entry(name).or_default();
                *sum = sum.saturating_add(n);
            }
        }
        self.seeds.push(SeedRecord { seed: outcome.seed, passed, trace_hash: outcome.trace_hash });
    }

    fn summarize(mut self, config: &CampaignConfig, wall: Duration) -> CampaignSummary {
        self.failures.sort_by_key(|f| f.seed);
        self.seeds.sort_by_key(|s| s.seed);
        let seeds_run = self.passed + self.failed;
        let wall_time_s = wall.as_secs_f64();
        let cores = config.jobs.min(available_cores()).max(1) as f64;
        let seeds_per_min_per_core =
            if wall_time_s > 0.0 { seeds_run as f64 / (wall_time_s / 60.0) / cores } else { 0.0 };
        CampaignSummary {
            label: config.label.clone(),
            seed_range: SeedRange { start: config.seeds.start, end: config.seeds.end },
            jobs: config.jobs,
            seeds_run,
            passed: self.passed,
            failed: self.failed,
            wall_time_s,
            seeds_per_min_per_core,
            failures: self.failures,
            totals: self.totals,
            count_maps: self.count_maps,
            seeds: self.seeds,
        }
    }
}

/// The last `cap` bytes written to it.
#[derive(Debug)]
struct Tail {
    bytes: Vec<u8>,
    cap: usize,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail { bytes: Vec::new(), cap }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.bytes.clear();
            self.bytes.extend_from_slice(&data[data.len() - self.cap..]);
        } else {
            self.bytes.extend_from_slice(data);
            if self.bytes.len() > self.cap {
                let excess = self.bytes.len() - self.cap;
                self.bytes.drain(..excess);
            }
        }
    }

    /// The last `n` non-blank lines, trimmed.
    fn last_lines(&self, n: usize) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
    }
}

/// What a child's stdout reader keeps.
#[derive(Debug)]
struct StdoutState {
    /// The last line starting with `seed=`.
    result_line: Option<String>,
    /// The end of every other line.
    tail: Tail,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read `src` to its end line by line into `state`, bounded.
fn read_stdout(mut src: impl Read, state: &Mutex<StdoutState>) {
    let mut buf = [0u8; 8192];
    let mut line = Vec::new();
    let finish = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let mut state = lock(state);
        if line.starts_with(b"seed=") {
            state.result_line = Some(String::from_utf8_lossy(line).into_owned());
        } else {
            state.tail.push(line);
            state.tail.push(b"\n");
        }
        line.clear();
    };
    let append = |line: &mut Vec<u8>, data: &[u8]| {
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&data[..data.len().min(room)]);
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut rest = &buf[..n];
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            append(&mut line, &rest[..pos]);
            finish(&mut line);
            rest = &rest[pos + 1..];
        }
        append(&mut line, rest);
    }
    if !line.is_empty() {
        finish(&mut line);
    }
}

/// Read `src` to its end keeping its tail.
fn read_tail(mut src: impl Read, tail: &Mutex<Tail>) {
    let mut buf = [0u8; 8192];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lock(tail).push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// `[cd dir &&] [VAR=value ...] program args...` as the command would run, quoted for a POSIX shell.
pub fn command_line(command: &Command) -> String {
    let mut words = Vec::new();
    if let Some(dir) = command.get_current_dir() {
        words.push(format!("cd {} &&", shell_quote(&dir.to_string_lossy())));
    }
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), shell_quote(&value.to_string_lossy())));
        }
    }
    words.push(shell_quote(&command.get_program().to_string_lossy()));
    words.extend(command.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

/// Run one seed's child to its end (or its timeout) and judge it.
fn run_seed(seed: u64, command: &(dyn Fn(u64) -> Command + Sync), timeout: Option<Duration>) -> SeedOutcome {
    let mut cmd = command(seed);
    let fallback_replay = command_line(&cmd);
    let failed = |reason: String, replay: Option<String>| SeedOutcome {
        seed,
        trace_hash: None,
        failure: Some(SeedFailure { seed, reason, replay: replay.unwrap_or_else(|| fallback_replay.clone()) }),
        metrics: BTreeMap::new(),
        count_maps: BTreeMap::new(),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return failed(format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()), None);
        }
    };
    let started = Instant::now();
    let stdout_state = Arc::new(Mutex::new(StdoutState { result_line: None, tail: Tail::new(TAIL_BYTES) }));
    let stderr_tail = Arc::new(Mutex::new(Tail::new(TAIL_BYTES)));
    // Each reader reports on `done` when its stream closes. They are detached: if a grandchild keeps a
    // pipe open past the grace period, its reader finishes whenever that grandchild does.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    if let Some(stdout) = child.stdout.take() {
        let (state, done) = (stdout_state.clone(), done_tx.clone());
        thread::spawn(move || {
            read_stdout(stdout, &state);
            let _ = done.send(());
        });
        readers += 1;
    }
    if let Some(stderr) = child.stderr.take() {
        let (tail, done) = (stderr_tail.clone(), done_tx.clone());
        thread::spawn(move || {
            read_tail(stderr, &tail);
            let _ = done.send(());
        });
        readers += 1;
    }
    drop(done_tx);

    // Wait for the child: mostly asleep on the readers' channel (a child's streams close when it exits),
    // checking the child every 100 ms, then polling with a short backoff once the streams are closed.
    let mut closed = 0;
    let mut backoff = Duration::from_millis(1);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return failed(format!("cannot wait for the child: {e}"), None);
            }
        }
        let left = match timeout {
            Some(limit) => match limit.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => left,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    timed_out = true;
                    break None;
                }
            },
            None => Duration::MAX,
        };
        if closed < readers {
            match done_rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(()) => closed += 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = readers,
            }
        } else {
            thread::sleep(backoff.min(left));
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    };
    let grace = Instant::now() + DRAIN_GRACE;
    while closed < readers {
        let left = grace.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => closed += 1,
            Err(_) => break,
        }
    }

    let (result_line, stdout_context) = {
        let state = lock(&stdout_state);
        (state.result_line.clone(), state.tail.last_lines(CONTEXT_LINES))
    };
    let stderr_context = lock(&stderr_tail).last_lines(CONTEXT_LINES);
    let context = || {
        if !stderr_context.is_empty() {
            format!("stderr: {}", stderr_context.join(" | "))
        } else if !stdout_context.is_empty() {
            format!("no stderr; stdout: {}", stdout_context.join(" | "))
        } else {
            "no output".to_string()
        }
    };
    let Some(status) = status else {
        debug_assert!(timed_out);
        return failed(format!("timed out after {} s", timeout.unwrap_or_default().as_secs()), None);
    };
    let Some(line) = result_line else {
        return failed(format!("exited with {} without a result line; {}", describe_status(status), context()), None);
    };
    let parsed = match parse_result_line(&line) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut shown: String = line.chars().take(200).collect();
            if shown.len() < line.len() {
                shown.push_str("...");
            }
            return failed(format!("unparseable result line ({e}): {shown}"), None);
        }
    };
    if parsed.seed != seed {
        return failed(format!("the result line is for seed {}, not seed {seed}: {line}", parsed.seed), None);
    }
    let failure = if !parsed.passed {
        let reason = parsed.reason.clone().unwrap_or_else(|| "result=fail without a reason".to_string());
        Some(SeedFailure { seed, reason, replay: parsed.replay.clone().unwrap_or(fallback_replay) })
    } else if !status.success() {
        let reason = format!("printed result=pass but exited with {}; {}", describe_status(status), context());
        Some(SeedFailure { seed, reason, replay: parsed.replay.clone().unwrap_or(fallback_replay) })
    } else {
        None
    };
    SeedOutcome { seed, trace_hash: parsed.trace_hash, failure, metrics: parsed.metrics, count_maps: parsed.count_maps }
}

/// Progress on stderr: a bar redrawn in place, or plain lines.
#[derive(Debug)]
struct Progress {
    style: Style,
    label: String,
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
    /// The last 5% step printed (lines).
    last_step: u64,
    /// The width of the bar currently drawn (0: none).
    drawn: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Bar,
    Lines,
    Off,
}

impl Progress {
    fn new(mode: ProgressMode, label: &str, total: u64, started: Instant) -> Progress {
        let style = match mode {
            ProgressMode::Off => Style::Off,
            _ if total == 0 => Style::Off,
            ProgressMode::Lines => Style::Lines,
            ProgressMode::Auto if io::stderr().is_terminal() => Style::Bar,
            ProgressMode::Auto => Style::Lines,
        };
        Progress { style, label: label.to_string(), total, started, last_draw: None, last_step: 0, drawn: 0 }
    }

    fn update(&mut self, done: u64, passed: u64, failed: u64, force: bool) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        match self.style {
            Style::Off => {}
            Style::Bar => {
                if !force && self.last_draw.is_some_and(|t| now.duration_since(t) < BAR_INTERVAL) {
                    return;
                }
                let text =
                    format!("{} {}", bar(done, self.total, 20), status_text(done, self.total, passed, failed, elapsed));
                let text = format!("{} {text}", self.label);
                let width = text.chars().count();
                let pad = self.drawn.saturating_sub(width);
                eprint!("\r{text}{:pad$}", "");
                self.drawn = width;
                self.last_draw = Some(now);
            }
            Style::Lines => {
                let step = done.saturating_mul(20) / self.total.max(1);
                let stale = now.duration_since(self.last_draw.unwrap_or(self.started)) >= LINE_INTERVAL;
                if step > self.last_step || stale || (force && done > 0) {
                    eprintln!("{}: {}", self.label, status_text(done, self.total, passed, failed, elapsed));
                    self.last_step = step;
                    self.last_draw = Some(now);
                }
            }
        }
    }

    /// Erase the bar so that other output starts on a clean line (it is redrawn on the next update).
    fn clear(&mut self) {
        if self.style == Style::Bar && self.drawn > 0 {
            eprint!("\r{:w$}\r", "", w = self.drawn);
            self.drawn = 0;
            self.last_draw = None;
        }
    }

    fn finish(&mut self, done: u64, passed: u64, failed: u64) {
        match self.style {
            Style::Off => {}
            Style::Bar => {
                self.update(done, passed, failed, true);
                eprintln!();
            }
            Style::Lines => {
                if self.last_step < 20 || done < self.total {
                    self.update(done, passed, failed, true);
                }
            }
        }
    }
}

/// `[#####.....]`, `width` cells.
fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 { width } else { (done.min(total) as u128 * width as u128 / total as u128) as usize };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// `312/1000 31% pass=310 fail=2 5.2 seeds/s eta 2m12s`.
fn status_text(done: u64, total: u64, passed: u64, failed: u64, elapsed: Duration) -> String {
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let mut text = format!("{done}/{total} {percent}% pass={passed} fail={failed} ");
    if rate >= 10.0 {
        let _ = write!(text, "{rate:.0} seeds/s");
    } else if rate >= 0.1 {
        let _ = write!(text, "{rate:.1} seeds/s");
    } else {
        let _ = write!(text, "{:.1} seeds/min", rate * 60.0);
    }
    if done >= total {
        let _ = write!(text, " took {}", duration_text(elapsed.as_secs()));
    } else if rate > 0.0 {
        let eta = (total - done) as f64 / rate;
        let _ = write!(text, " eta {}", duration_text(eta.min(u64::MAX as f64) as u64));
    } else {
        text.push_str(" eta ?");
    }
    text
}

/// `45s`, `2m12s`, `3h05m`.
fn duration_text(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_status() {
        assert_eq!(bar(0, 10, 10), "[..........]");
        assert_eq!(bar(5, 10, 10), "[#####.....]");
        assert_eq!(bar(10, 10, 10), "[##########]");
        assert_eq!(bar(312, 1000, 20), "[######..............]");
        let text = status_text(312, 1000, 310, 2, Duration::from_secs(60));
        assert_eq!(text, "312/1000 31% pass=310 fail=2 5.2 seeds/s eta 2m12s");
        assert_eq!(status_text(0, 10, 0, 0, Duration::ZERO), "0/10 0% pass=0 fail=0 0.0 seeds/min eta ?");
        assert_eq!(status_text(10, 10, 9, 1, Duration::from_secs(5)), "10/10 100% pass=9 fail=1 2.0 seeds/s took 5s");
        assert_eq!(duration_text(3 * 3600 + 5 * 60 + 7), "3h05m");
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut tail = Tail::new(8);
        tail.push(b"abc\n");
        tail.push(b"def\n");
        tail.push(b"gh\n");
        assert_eq!(tail.bytes, b"\ndef\ngh\n");
        tail.push(b"0123456789\nxyz");
        assert_eq!(tail.bytes, b"6789\nxyz");
        assert_eq!(tail.last_lines(1), vec!["xyz"]);
        assert_eq!(tail.last_lines(5), vec!["6789", "xyz"]);
    }

    #[test]
    fn stdout_reader_keeps_the_last_result_line() {
        let state = Mutex::new(StdoutState { result_line: None, tail: Tail::new(64) });
        let input = b"hello\nseed=1 result=fail\r\nmiddle\nseed=1 result=pass\nlast words".to_vec();
        read_stdout(&input[..], &state);
        let state = state.into_inner().unwrap();
        assert_eq!(state.result_line.as_deref(), Some("seed=1 result=pass"));
        assert_eq!(state.tail.last_lines(5), vec!["hello", "middle", "last words"]);
    }

    #[test]
    fn stdout_reader_bounds_long_lines() {
        let state = Mutex::new(StdoutState { result_line: None, tail: Tail::new(64) });
        let mut input = b"seed=1 result=pass reason=\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        input.extend(b"\"\n");
        read_stdout(&input[..], &state);
        let line = state.into_inner().unwrap().result_line.unwrap();
        assert_eq!(line.len(), MAX_LINE_BYTES);
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(shell_quote("plain-word_1.2/x"), "plain-word_1.2/x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
        let mut command = Command::new("sh");
        command.arg("-c").arg("echo hi").env("SEED", "7");
        assert_eq!(command_line(&command), "SEED=7 sh -c 'echo hi'");
        command.current_dir("/tmp/a b");
        assert_eq!(command_line(&command), "cd '/tmp/a b' && SEED=7 sh -c 'echo hi'");
    }
}
