//! What a user reads after a run: a plain-text table per run, a table per sweep, and files for later
//! analysis (JSON of every report, CSV of the time series, an SVG plot of rate and latency against load).
//!
//! A *sweep* is several runs of one workload at increasing loads against one target. Its headline
//! figure is the highest load whose measured phases achieved at least 95% of the requested op rate
//! without an error or a failure ([`highest_sustained_load`]), as SPEC SFS reports a business metric.
//!
//! Everything here only formats [`RunReport`]s; nothing runs inside the simulator.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use serde::Serialize;

use crate::metrics::{KindReport, PhaseReport, RunReport};
use crate::workload::PhaseRole;

/// The fraction of the requested op rate a load must achieve to count as sustained in the sweep table,
/// the JSON and the plot.
pub const SUSTAINED_FRACTION: f64 = 0.95;

/// Longest failure text the table prints (the JSON keeps it whole).
const FAILURE_TEXT_MAX_CHARS: usize = 400;

// ---------------------------------------------------------------------------------------------------
// Figures of a run
// ---------------------------------------------------------------------------------------------------

/// The figures of one run that a sweep compares, over its measured (run) phases.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    pub load: u64,
    pub procs: usize,
    /// Requested op rate (`None`: closed loop, or no measured phase).
    pub requested_ops_per_sec: Option<f64>,
    pub achieved_ops_per_sec: f64,
    /// Op-weighted mean of the per-kind means, microseconds (`None`: no operation measured).
    pub mean_us: Option<f64>,
    /// Highest per-kind p99, microseconds: an upper bound of the p99 over all kinds.
    pub p99_us: Option<f64>,
    /// Bytes read and written over the measured phases' total elapsed time, MiB/s.
    pub mib_per_sec: f64,
    /// Errors and failures over every phase (setup and check included).
    pub errors: u64,
    pub failures: u64,
}

impl SweepPoint {
    /// The sweep figures of `run`.
    pub fn of(run: &RunReport) -> SweepPoint {
        let (achieved, requested) = run.rates();
        let measured: Vec<&PhaseReport> = run.measured().collect();
        let requested = requested.filter(|r| !measured.is_empty() && r.is_finite() && *r > 0.0);
        let kinds: Vec<&KindReport> = measured.iter().flat_map(|p| p.kinds.iter()).collect();
        let ops: u64 = kinds.iter().map(|k| k.ops).sum();
        let mean_us = (ops > 0).then(|| kinds.iter().map(|k| k.mean_us * k.ops as f64).sum::<f64>() / ops as f64);
        let p99_us = kinds.iter().filter(|k| k.ops > 0).map(|k| k.p99_us).reduce(f64::max);
        let bytes: u64 = measured.iter().map(|p| p.bytes_read + p.bytes_written).sum();
        let secs: f64 = measured.iter().map(|p| p.elapsed_sec).sum();
        let mib_per_sec = if secs > 0.0 { bytes as f64 / (1024.0 * 1024.0) / secs } else { 0.0 };
        SweepPoint {
            load: run.load,
            procs: run.procs,
            requested_ops_per_sec: requested,
            achieved_ops_per_sec: if achieved.is_finite() { achieved } else { 0.0 },
            mean_us,
            p99_us,
            mib_per_sec,
            errors: run.errors(),
            failures: run.failures(),
        }
    }

    /// Achieved over requested op rate, percent (`None` without a requested rate).
    pub fn percent_of_requested(&self) -> Option<f64> {
        self.requested_ops_per_sec.map(|r| self.achieved_ops_per_sec / r * 100.0)
    }

    /// Whether the run achieved `fraction` of its requested rate with no error and no failure.
    pub fn sustains(&self, fraction: f64) -> bool {
        self.errors == 0
            && self.failures == 0
            && self.requested_ops_per_sec.is_some_and(|r| self.achieved_ops_per_sec >= fraction * r)
    }
}

/// The highest load whose measured phases achieved at least `fraction` of the requested op rate
/// ([`RunReport::rates`]) with no error and no failure in any phase. `None` if no run did, or if the runs
/// are closed loop (no requested rate).
pub fn highest_sustained_load(runs: &[RunReport], fraction: f64) -> Option<u64> {
    runs.iter().map(SweepPoint::of).filter(|p| p.sustains(fraction)).map(|p| p.load).max()
}

/// The runs in increasing load (runs of equal load keep their order).
fn by_load(runs: &[RunReport]) -> Vec<&RunReport> {
    let mut sorted: Vec<&RunReport> = runs.iter().collect();
    sorted.sort_by_key(|r| r.load);
    sorted
}

/// The distinct values of `names` in first-seen order, joined with " / ".
fn distinct_joined<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.join(" / ")
}

fn role_name(role: PhaseRole) -> &'static str {
    match role {
        PhaseRole::Setup => "setup",
        PhaseRole::Run => "run",
        PhaseRole::Check => "check",
    }
}

// ---------------------------------------------------------------------------------------------------
// Number formatting
// ---------------------------------------------------------------------------------------------------

/// `value` with `decimals` decimals, or "-" if it is not a finite number.
fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() { format!("{value:.decimals$}") } else { "-".to_string() }
}

/// A latency in adaptive units: microseconds below 1 ms, milliseconds below 1 s, else seconds.
pub fn format_latency_us(us: f64) -> String {
    if !us.is_finite() {
        "-".to_string()
    } else if us < 1_000.0 {
        format!("{us:.1} us")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// `value` with about four significant digits (no exponent), "-" if not finite.
fn significant(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 9) as usize;
    format!("{value:.decimals$}")
}

fn percent(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map_or_else(|| "-".to_string(), |v| format!("{v:.1}%"))
}

/// A failure's text on one line, cut to [`FAILURE_TEXT_MAX_CHARS`].
fn one_line(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() > FAILURE_TEXT_MAX_CHARS {
        let cut: String = flat.chars().take(FAILURE_TEXT_MAX_CHARS).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

// ---------------------------------------------------------------------------------------------------
// Plain-text tables
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A table with aligned columns: text columns to the left, numbers to the right.
#[derive(Debug)]
struct TextTable {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    fn new(columns: &[(&'static str, Align)]) -> TextTable {
        TextTable { columns: columns.to_vec(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "a row has one cell per column");
        self.rows.push(cells);
    }

    /// The table, each line starting with `indent` and ending with a newline.
    fn render(&self, indent: &str) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(name, _)| name.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(name, _)| (*name).to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, ((cell, width), (_, align))) in row.iter().zip(&widths).zip(&self.columns).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width.saturating_sub(cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// What [`table_with`] shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Give setup and check phases the per-kind latency table too (by default only measured phases).
    pub latency_for_every_phase: bool,
}

/// The results of one run as a plain-text table for the terminal (see [`table_with`]).
pub fn table(report: &RunReport) -> String {
    table_with(report, &TableOptions::default())
}

/// The results of one run as a plain-text table: a summary row per phase (achieved against requested
/// op rate), the latency per kind of operation of the measured phases, the workload's own figures, and
/// the first failures. Aligned columns, no colour codes.
pub fn table_with(report: &RunReport, options: &TableOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} against {}: load {}, {} process{}, seed {}, verify {}",
        report.workload,
        report.target,
        report.load,
        report.procs,
        if report.procs == 1 { "" } else { "es" },
        report.seed,
        if report.verify { "on" } else { "off" }
    );
    let point = SweepPoint::of(report);
    if report.measured().next().is_some() {
        let requested = match point.requested_ops_per_sec {
            Some(r) => format!(" of {r:.1} requested ({})", percent(point.percent_of_requested())),
            None => " (closed loop)".to_string(),
        };
        let _ = writeln!(out, "measured phases: {:.1} ops/s achieved{requested}", point.achieved_ops_per_sec);
    }
    let _ = writeln!(out, "errors: {}, failures: {}", point.errors, point.failures);

    out.push_str("\nphases\n");
    let mut phases = TextTable::new(&[
        ("phase", Align::Left),
        ("role", Align::Left),
        ("procs", Align::Right),
        ("elapsed s", Align::Right),
        ("ops", Align::Right),
        ("ops/s", Align::Right),
        ("requested", Align::Right),
        ("% req", Align::Right),
        ("MiB/s", Align::Right),
        ("errors", Align::Right),
        ("failures", Align::Right),
    ]);
    for phase in &report.phases {
        let requested = phase.requested_ops_per_sec.filter(|r| r.is_finite() && *r > 0.0);
        phases.row(vec![
            phase.name.clone(),
            role_name(phase.role).to_string(),
            phase.procs.to_string(),
            fixed(phase.elapsed_sec, 3),
            phase.ops.to_string(),
            fixed(phase.ops_per_sec, 1),
            requested.map_or_else(|| "-".to_string(), |r| fixed(r, 1)),
            percent(requested.map(|r| phase.ops_per_sec / r * 100.0)),
            fixed(phase.mib_per_sec, 2),
            phase.errors.to_string(),
            phase.failures.to_string(),
        ]);
    }
    out.push_str(&phases.render("  "));

    for phase in &report.phases {
        if phase.role != PhaseRole::Run && !options.latency_for_every_phase {
            continue;
        }
        let _ = writeln!(out, "\nlatency of phase {} ({})", phase.name, role_name(phase.role));
        if phase.kinds.is_empty() {
            out.push_str("  no operations\n");
            continue;
        }
        let mut kinds = TextTable::new(&[
            ("op", Align::Left),
            ("ops", Align::Right),
            ("ops/s", Align::Right),
            ("mean", Align::Right),
            ("p50", Align::Right),
            ("p90", Align::Right),
            ("p99", Align::Right),
            ("p99.9", Align::Right),
            ("max", Align::Right),
            ("errors", Align::Right),
        ]);
        for kind in &phase.kinds {
            kinds.row(vec![
                kind.op.name().to_string(),
                kind.ops.to_string(),
                fixed(kind.ops_per_sec, 1),
                format_latency_us(kind.mean_us),
                format_latency_us(kind.p50_us),
                format_latency_us(kind.p90_us),
                format_latency_us(kind.p99_us),
                format_latency_us(kind.p999_us),
                format_latency_us(kind.max_us),
                kind.errors.to_string(),
            ]);
        }
        out.push_str(&kinds.render("  "));
    }

    if !report.metrics.is_empty() {
        out.push_str("\nmetrics\n");
        let mut metrics = TextTable::new(&[("name", Align::Left), ("value", Align::Right), ("unit", Align::Left)]);
        for metric in &report.metrics {
            metrics.row(vec![metric.name.clone(), significant(metric.value), metric.unit.clone()]);
        }
        out.push_str(&metrics.render("  "));
    }

    for phase in report.phases.iter().filter(|p| p.failures > 0) {
        let _ = writeln!(
            out,
            "\nfailures of phase {}: {} (first {} shown)",
            phase.name,
            phase.failures,
            phase.first_failures.len()
        );
        for failure in &phase.first_failures {
            let _ = writeln!(out, "  - {}", one_line(failure));
        }
    }
    out
}

/// One row per load of a sweep: requested and achieved op rate, latency and bandwidth of the measured
/// phases, errors; then the highest load that achieved 95% of its requested rate.
pub fn sweep_table(runs: &[RunReport]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("no runs\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{} against {}: {} run{}",
        distinct_joined(runs.iter().map(|r| r.workload.as_str())),
        distinct_joined(runs.iter().map(|r| r.target.as_str())),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    out.push_str(
        "rates and latency over the measured phases; mean = op-weighted mean of the per-kind means, \
         p99 = highest per-kind p99 (an upper bound of the p99 over all operations)\n\n",
    );
    let mut table = TextTable::new(&[
        ("load", Align::Right),
        ("procs", Align::Right),
        ("requested ops/s", Align::Right),
        ("achieved ops/s", Align::Right),
        ("% req", Align::Right),
        ("mean", Align::Right),
        ("p99", Align::Right),
        ("MiB/s", Align::Right),
        ("errors+failures", Align::Right),
    ]);
    for run in by_load(runs) {
        let point = SweepPoint::of(run);
        table.row(vec![
            point.load.to_string(),
            point.procs.to_string(),
            point.requested_ops_per_sec.map_or_else(|| "-".to_string(), |r| fixed(r, 1)),
            fixed(point.achieved_ops_per_sec, 1),
            percent(point.percent_of_requested()),
            point.mean_us.map_or_else(|| "-".to_string(), format_latency_us),
            point.p99_us.map_or_else(|| "-".to_string(), format_latency_us),
            fixed(point.mib_per_sec, 2),
            (point.errors + point.failures).to_string(),
        ]);
    }
    out.push_str(&table.render(""));
    let percent_label = SUSTAINED_FRACTION * 100.0;
    match highest_sustained_load(runs, SUSTAINED_FRACTION) {
        Some(load) => {
            let _ = writeln!(out, "\nhighest load achieving >= {percent_label:.0}% of the requested rate: {load}");
        }
        None if runs.iter().all(|r| SweepPoint::of(r).requested_ops_per_sec.is_none()) => {
            let _ = writeln!(
                out,
                "\nhighest load achieving >= {percent_label:.0}% of the requested rate: none (closed-loop runs have no requested rate)"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\nhighest load achieving >= {percent_label:.0}% of the requested rate: none (no load did, without errors or failures)"
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------

/// Every report of a sweep as pretty JSON: `{ "workload", "target", "runs", "highest_sustained_load_95" }`
/// (workload and target are the first run's, or null without runs).
pub fn write_json(path: &Path, runs: &[RunReport]) -> std::io::Result<()> {
    let document = serde_json::json!({
        "workload": runs.first().map(|r| r.workload.clone()),
        "target": runs.first().map(|r| r.target.clone()),
        "runs": runs,
        "highest_sustained_load_95": highest_sustained_load(runs, SUSTAINED_FRACTION),
    });
    let mut file = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut file, &document)?;
    file.write_all(b"\n")?;
    file.flush()
}

/// The header of the CSV [`write_csv`] writes.
pub const CSV_HEADER: &str = "load,phase,role,start_sec,ops,ops_per_sec,mb_per_sec,mean_us,p50_us,p99_us";

/// A CSV field: quoted (quotes doubled) if it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// Latency over time as CSV: [`CSV_HEADER`], then one row per interval of every phase's time series of
/// every run, in the runs' order. `mb_per_sec` is MiB/s, as in [`crate::metrics::IntervalReport`].
pub fn csv(runs: &[RunReport]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for run in runs {
        for phase in &run.phases {
            let name = csv_field(&phase.name);
            for interval in &phase.series {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{}",
                    run.load,
                    name,
                    role_name(phase.role),
                    csv_number(interval.start_sec, 3),
                    interval.ops,
                    csv_number(interval.ops_per_sec, 3),
                    csv_number(interval.mb_per_sec, 3),
                    csv_number(interval.mean_us, 3),
                    csv_number(interval.p50_us, 3),
                    csv_number(interval.p99_us, 3),
                );
            }
        }
    }
    out
}

/// A number with fixed decimals; an empty field if it is not finite.
fn csv_number(value: f64, decimals: usize) -> String {
    if value.is_finite() { format!("{value:.decimals$}") } else { String::new() }
}

/// Writes [`csv`] to `path`.
pub fn write_csv(path: &Path, runs: &[RunReport]) -> std::io::Result<()> {
    std::fs::write(path, csv(runs))
}

/// Writes [`svg_plot`] to `path`.
pub fn write_svg(path: &Path, runs: &[RunReport]) -> std::io::Result<()> {
    std::fs::write(path, svg_plot(runs))
}

// ---------------------------------------------------------------------------------------------------
// SVG plot
// ---------------------------------------------------------------------------------------------------

const SVG_WIDTH: f64 = 880.0;
const SVG_TITLE_HEIGHT: f64 = 48.0;
const PANEL_HEIGHT: f64 = 330.0;
/// Room under the panels for a note.
const SVG_FOOTER_HEIGHT: f64 = 24.0;
const MARGIN_LEFT: f64 = 86.0;
const MARGIN_RIGHT: f64 = 210.0;
const MARGIN_TOP: f64 = 34.0;
const MARGIN_BOTTOM: f64 = 56.0;
/// Space between the plot frame and the first and last load.
const X_INSET: f64 = 24.0;
/// Pixels per character of an axis label, to decide whether loads to scale leave room for their labels.
const LABEL_CHAR_PX: f64 = 7.5;

const COLOR_ACHIEVED: &str = "#1f77b4";
const COLOR_REQUESTED: &str = "#7f7f7f";
const COLOR_MEAN: &str = "#2ca02c";
const COLOR_P99: &str = "#d62728";

/// A coordinate for the SVG: never NaN or infinite.
fn px(value: f64) -> String {
    format!("{:.1}", if value.is_finite() { value } else { 0.0 })
}

/// Text for XML content and attribute values.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A plot area, in SVG pixels.
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Area {
    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn right(&self) -> f64 {
        self.left + self.width
    }
}

/// Where loads go along the x axis.
#[derive(Clone, Debug)]
enum XScale {
    /// To scale between the smallest and the largest load.
    Linear { low: f64, high: f64 },
    /// Evenly spaced, in order (when to scale their labels would overlap).
    Even(Vec<u64>),
}

impl XScale {
    fn for_loads(loads: &[u64], width: f64) -> XScale {
        let usable = width - 2.0 * X_INSET;
        let (Some(&low), Some(&high)) = (loads.first(), loads.last()) else {
            return XScale::Linear { low: 0.0, high: 1.0 };
        };
        if low == high {
            return XScale::Linear { low: low as f64, high: high as f64 };
        }
        let per_load = usable / (high - low) as f64;
        let fits = loads.windows(2).all(|pair| {
            let label_px = (pair[0].to_string().len() + pair[1].to_string().len()) as f64 * LABEL_CHAR_PX / 2.0;
            (pair[1] - pair[0]) as f64 * per_load >= label_px + 8.0
        });
        if fits { XScale::Linear { low: low as f64, high: high as f64 } } else { XScale::Even(loads.to_vec()) }
    }

    fn x(&self, load: u64, area: &Area) -> f64 {
        let usable = area.width - 2.0 * X_INSET;
        let fraction = match self {
            XScale::Linear { low, high } if high > low => (load as f64 - low) / (high - low),
            XScale::Linear { .. } => 0.5,
            XScale::Even(loads) if loads.len() > 1 => {
                loads.iter().position(|l| *l == load).unwrap_or(0) as f64 / (loads.len() - 1) as f64
            }
            XScale::Even(_) => 0.5,
        };
        area.left + X_INSET + fraction * usable
    }

    fn label(&self) -> &'static str {
        match self {
            XScale::Linear { .. } => "load",
            XScale::Even(_) => "load (evenly spaced, not to scale)",
        }
    }
}

/// The y axis of a panel.
#[derive(Clone, Debug)]
enum YScale {
    /// From 0 to `high`, ticks every `step`.
    Linear { high: f64, step: f64 },
    /// From 10^low to 10^high, ticks at each power of ten.
    Log { low: i32, high: i32 },
}

/// A round step giving about five ticks up to `high`.
fn nice_step(high: f64) -> f64 {
    let raw = high / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw);
    step.unwrap_or(10.0 * magnitude)
}

impl YScale {
    fn linear(values: &[f64]) -> YScale {
        let max = values.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        // Headroom, so the highest point does not sit on the frame.
        let max = if max > 0.0 { max * 1.08 } else { 1.0 };
        let step = nice_step(max);
        YScale::Linear { high: (max / step).ceil().max(1.0) * step, step }
    }

    fn log(values: &[f64]) -> YScale {
        let positive: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
        if positive.is_empty() {
            return YScale::Log { low: -3, high: 0 };
        }
        let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let max = positive.iter().copied().fold(0.0, f64::max);
        let low = (min.log10().floor() as i32).clamp(-9, 9);
        let high = (max.log10().ceil() as i32).clamp(-9, 12).max(low + 1);
        YScale::Log { low, high }
    }

    /// The y pixel of `value`, `None` if it cannot be shown (not finite; not positive on a log axis).
    fn y(&self, value: f64, area: &Area) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        let fraction = match self {
            YScale::Linear { high, .. } => value / high,
            YScale::Log { low, high } => {
                if value <= 0.0 {
                    return None;
                }
                (value.log10() - f64::from(*low)) / f64::from(high - low)
            }
        };
        Some(area.bottom() - fraction.clamp(0.0, 1.0) * area.height)
    }

    /// The ticks: value and label.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            YScale::Linear { high, step } => {
                let decimals = (0..9usize)
                    .find(|d| {
                        let scaled = step * 10f64.powi(*d as i32);
                        (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
                    })
                    .unwrap_or(9);
                let count = (high / step).round() as u64;
                (0..=count)
                    .map(|i| {
                        let value = i as f64 * step;
                        (value, format!("{value:.decimals$}"))
                    })
                    .collect()
            }
            YScale::Log { low, high } => {
                // Few decades: 2 and 5 times each power of ten too.
                let multiples: &[f64] = if high - low <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
                let mut ticks = Vec::new();
                for e in *low..=*high {
                    for m in multiples {
                        let value = m * 10f64.powi(e);
                        if e == *high && *m > 1.0 {
                            break;
                        }
                        let decimals = (-e).max(0) as usize;
                        ticks.push((value, format!("{value:.decimals$}")));
                    }
                }
                ticks
            }
        }
    }
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug)]
struct Style {
    label: &'static str,
    color: &'static str,
    dashed: bool,
}

/// One series of a panel: per run, its load and value (`None`: nothing to show for that run).
#[derive(Debug)]
struct Series {
    style: Style,
    points: Vec<(u64, Option<f64>)>,
    unit: &'static str,
}

struct Panel<'a> {
    title: &'a str,
    y_label: &'a str,
    area: Area,
    y: YScale,
    series: Vec<Series>,
}

fn draw_panel(out: &mut String, panel: &Panel<'_>, x: &XScale, loads: &[u64]) {
    let area = panel.area;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        px(area.left),
        px(area.top - 12.0),
        xml_escape(panel.title)
    );
    // Grid and y ticks.
    for (value, label) in panel.y.ticks() {
        let Some(y) = panel.y.y(value, &area) else { continue };
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#e0e0e0" stroke-width="1"/>"##,
            px(area.left),
            px(area.right()),
            y = px(y)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            px(area.left - 6.0),
            px(y + 4.0),
            xml_escape(&label)
        );
    }
    // X ticks: one per load.
    for load in loads {
        let lx = x.x(*load, &area);
        let _ = writeln!(
            out,
            r##"<line x1="{lx}" y1="{}" x2="{lx}" y2="{}" stroke="#333333" stroke-width="1"/>"##,
            px(area.bottom()),
            px(area.bottom() + 5.0),
            lx = px(lx)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{load}</text>"#,
            px(lx),
            px(area.bottom() + 18.0)
        );
    }
    // Frame and axis labels.
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#333333" stroke-width="1"/>"##,
        px(area.left),
        px(area.top),
        px(area.width),
        px(area.height)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        px(area.left + area.width / 2.0),
        px(area.bottom() + 38.0),
        xml_escape(x.label())
    );
    let (label_x, label_y) = (area.left - 62.0, area.top + area.height / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx}" y="{ly}" font-size="12" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        xml_escape(panel.y_label),
        lx = px(label_x),
        ly = px(label_y)
    );
    // Series, the first listed drawn last (on top).
    for series in panel.series.iter().rev() {
        draw_series(out, series, x, &panel.y, &area);
    }
    // Legend: only the series with something to show.
    let mut legend_y = area.top + 14.0;
    let legend_x = area.right() + 18.0;
    for series in panel.series.iter().filter(|s| s.points.iter().any(|(_, v)| v.is_some())) {
        let style = series.style;
        let dash = if style.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{dash}/>"#,
            px(legend_x),
            px(legend_x + 28.0),
            style.color,
            y = px(legend_y)
        );
        let _ = writeln!(out, "{}", marker(legend_x + 14.0, legend_y, style, ""));
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="12">{}</text>"#,
            px(legend_x + 36.0),
            px(legend_y + 4.0),
            xml_escape(style.label)
        );
        legend_y += 20.0;
    }
}

/// A point marker: filled for measured values, hollow for dashed (requested) series; `title` is shown
/// on hover.
fn marker(x: f64, y: f64, style: Style, title: &str) -> String {
    let fill = if style.dashed { "#ffffff" } else { style.color };
    let body = if title.is_empty() { String::new() } else { format!("<title>{}</title>", xml_escape(title)) };
    format!(
        r#"<circle cx="{}" cy="{}" r="{}" fill="{fill}" stroke="{}" stroke-width="1.5">{body}</circle>"#,
        px(x),
        px(y),
        if style.dashed { "5" } else { "3.5" },
        style.color
    )
}

/// A series as polylines through consecutive shown values (a run without a value breaks the line),
/// and a marker per value.
fn draw_series(out: &mut String, series: &Series, x: &XScale, y: &YScale, area: &Area) {
    let style = series.style;
    let placed: Vec<Option<(f64, f64, u64, f64)>> = series
        .points
        .iter()
        .map(|(load, value)| {
            let value = (*value)?;
            Some((x.x(*load, area), y.y(value, area)?, *load, value))
        })
        .collect();
    let dash = if style.dashed { r#" stroke-dasharray="6 4""# } else { "" };
    for segment in placed.split(Option::is_none) {
        if segment.len() < 2 {
            continue;
        }
        let points: Vec<String> =
            segment.iter().flatten().map(|(px_x, px_y, _, _)| format!("{},{}", px(*px_x), px(*px_y))).collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            points.join(" "),
            style.color
        );
    }
    for (px_x, px_y, load, value) in placed.iter().flatten() {
        let title = format!("load {load}: {} {} {}", style.label, significant(*value), series.unit);
        let _ = writeln!(out, "{}", marker(*px_x, *px_y, style, &title));
    }
}

/// A self-contained SVG of a sweep: op rate against load (achieved, and requested when the runs are
/// paced) and latency against load (mean and p99 of the measured phases, milliseconds on a log axis).
/// One run gives single points; no runs give an empty plot saying so.
pub fn svg_plot(runs: &[RunReport]) -> String {
    let height = SVG_TITLE_HEIGHT + 2.0 * PANEL_HEIGHT + SVG_FOOTER_HEIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#,
        w = px(SVG_WIDTH),
        h = px(height)
    );
    let _ = writeln!(out, r##"<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##, px(SVG_WIDTH), px(height));
    let title = if runs.is_empty() {
        "no runs".to_string()
    } else {
        format!(
            "{} against {}",
            distinct_joined(runs.iter().map(|r| r.workload.as_str())),
            distinct_joined(runs.iter().map(|r| r.target.as_str()))
        )
    };
    let _ = writeln!(
        out,
        r#"<text x="{}" y="30" font-size="18" font-weight="bold" text-anchor="middle">{}</text>"#,
        px(SVG_WIDTH / 2.0),
        xml_escape(&title)
    );

    let sorted = by_load(runs);
    let points: Vec<SweepPoint> = sorted.iter().map(|r| SweepPoint::of(r)).collect();
    let mut loads: Vec<u64> = points.iter().map(|p| p.load).collect();
    loads.dedup();
    let area_of = |index: f64| Area {
        left: MARGIN_LEFT,
        top: SVG_TITLE_HEIGHT + index * PANEL_HEIGHT + MARGIN_TOP,
        width: SVG_WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
        height: PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
    };
    let x = XScale::for_loads(&loads, area_of(0.0).width);

    let achieved: Vec<(u64, Option<f64>)> = points.iter().map(|p| (p.load, Some(p.achieved_ops_per_sec))).collect();
    let requested: Vec<(u64, Option<f64>)> = points.iter().map(|p| (p.load, p.requested_ops_per_sec)).collect();
    let rate_values: Vec<f64> = achieved.iter().chain(&requested).filter_map(|(_, v)| *v).collect();
    let mut rate_series = vec![Series {
        style: Style { label: "achieved", color: COLOR_ACHIEVED, dashed: false },
        points: achieved,
        unit: "ops/s",
    }];
    if requested.iter().any(|(_, v)| v.is_some()) {
        rate_series.push(Series {
            style: Style { label: "requested", color: COLOR_REQUESTED, dashed: true },
            points: requested,
            unit: "ops/s",
        });
    }
    let rate_panel = Panel {
        title: "op rate against load (measured phases)",
        y_label: "ops/s",
        area: area_of(0.0),
        y: YScale::linear(&rate_values),
        series: rate_series,
    };

    let ms = |us: Option<f64>| us.map(|v| v / 1_000.0);
    let mean: Vec<(u64, Option<f64>)> = points.iter().map(|p| (p.load, ms(p.mean_us))).collect();
    let p99: Vec<(u64, Option<f64>)> = points.iter().map(|p| (p.load, ms(p.p99_us))).collect();
    let latency_values: Vec<f64> = mean.iter().chain(&p99).filter_map(|(_, v)| *v).collect();
    let latency_panel = Panel {
        title: "latency against load (measured phases)",
        y_label: "latency, ms (log scale)",
        area: area_of(1.0),
        y: YScale::log(&latency_values),
        series: vec![
            Series {
                style: Style { label: "mean (op-weighted)", color: COLOR_MEAN, dashed: false },
                points: mean,
                unit: "ms",
            },
            Series {
                style: Style { label: "p99 (highest kind)", color: COLOR_P99, dashed: false },
                points: p99,
                unit: "ms",
            },
        ],
    };

    draw_panel(&mut out, &rate_panel, &x, &loads);
    draw_panel(&mut out, &latency_panel, &x, &loads);

    let note = match (runs.is_empty(), loads.len(), highest_sustained_load(runs, SUSTAINED_FRACTION)) {
        (true, _, _) => Some("no runs to plot".to_string()),
        (false, 1, _) => Some("one load only: the per-phase figures are in the table".to_string()),
        (false, _, Some(load)) => Some(format!("highest load achieving >= 95% of the requested rate: {load}")),
        (false, _, None) => None,
    };
    if let Some(note) = note {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="12" fill="#444444">{}</text>"##,
            px(MARGIN_LEFT),
            px(height - 8.0),
            xml_escape(&note)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metric, Recorder};
    use crate::op::OpKind;
    use crate::workload::{Phase, Score};

    const SEC_NS: u64 = 1_000_000_000;
    const ELAPSED_NS: u64 = 10 * SEC_NS;

    /// A phase of `ops` operations (stats, 200 us; every 10th a 4 KiB write, 2 ms) spread evenly over
    /// 10 s, the first `errors` of them failed, plus `failures` wrong results.
    fn phase(
        name: &str,
        role: PhaseRole,
        rate_per_proc: Option<f64>,
        procs: usize,
        ops: u64,
        errors: u64,
        failures: &[&str],
    ) -> PhaseReport {
        let spec =
            Phase { name: name.to_string(), role, rate_per_proc, duration_ns: Some(ELAPSED_NS), score: Score::None };
        let mut recorder = Recorder::new(SEC_NS);
        for i in 0..ops {
            let done_ns = (i * ELAPSED_NS / ops.max(1)).min(ELAPSED_NS - 1);
            if i % 10 == 9 {
                recorder.record(OpKind::WriteFile, 2_000_000, done_ns, 0, 4096, i < errors);
            } else {
                recorder.record(OpKind::Stat, 200_000, done_ns, 0, 0, i < errors);
            }
        }
        for failure in failures {
            recorder.fail((*failure).to_string());
        }
        PhaseReport::new(&spec, procs, &recorder, ELAPSED_NS)
    }

    /// A run at `load` (2 processes per load, each asked for 50 ops/s, so 100 ops/s per load) whose
    /// measured phase completed `ops` operations in 10 s, after a setup phase.
    fn run(load: u64, paced: bool, ops: u64, errors: u64, failures: &[&str]) -> RunReport {
        let procs = 2 * load as usize;
        RunReport {
            workload: "swbuild".to_string(),
            target: "memfs".to_string(),
            load,
            procs,
            seed: 7,
            verify: true,
            phases: vec![
                phase("setup", PhaseRole::Setup, None, procs, 50, 0, &[]),
                phase("build", PhaseRole::Run, paced.then_some(50.0), procs, ops, errors, failures),
            ],
            metrics: vec![Metric::new("achieved_fraction", ops as f64 / (1000.0 * load as f64), "")],
        }
    }

    /// A sweep of four paced loads.
    fn sweep() -> Vec<RunReport> {
        vec![
            run(1, true, 1_000, 0, &[]), // 100%
            run(2, true, 1_950, 0, &[]), // 97.5%
            run(3, true, 2_940, 1, &[]), // 98%, but an error
            run(4, true, 3_200, 0, &[]), // 80%
        ]
    }

    #[test]
    fn highest_sustained_load_is_the_highest_load_at_95_percent_without_errors() {
        let runs = sweep();
        assert_eq!(highest_sustained_load(&runs, 0.95), Some(2));
        assert_eq!(highest_sustained_load(&runs, 0.75), Some(4));
        // A higher load at its rate, but with a failure, does not count; nor does order matter.
        let mut runs = runs;
        runs.push(run(5, true, 5_000, 0, &["wrong bytes"]));
        runs.reverse();
        assert_eq!(highest_sustained_load(&runs, 0.95), Some(2));
        assert_eq!(highest_sustained_load(&runs[..2], 0.95), None, "loads 5 and 4 both fall short");
    }

    #[test]
    fn closed_loop_and_empty_sweeps_have_no_sustained_load() {
        assert_eq!(highest_sustained_load(&[], 0.95), None);
        let closed = vec![run(1, false, 1_000, 0, &[]), run(2, false, 2_000, 0, &[])];
        assert_eq!(highest_sustained_load(&closed, 0.95), None);
        assert!(sweep_table(&closed).contains("none (closed-loop runs have no requested rate)"));
    }

    #[test]
    fn sweep_point_weights_kind_means_by_ops_and_takes_the_highest_p99() {
        let point = SweepPoint::of(&run(1, true, 1_000, 0, &[]));
        // 900 stats of 200 us and 100 writes of 2 ms (within the histogram's 1/32 precision).
        let want_mean = (900.0 * 200.0 + 100.0 * 2_000.0) / 1_000.0;
        assert!((point.mean_us.unwrap_or(0.0) - want_mean).abs() / want_mean < 0.04, "{point:?}");
        assert!((point.p99_us.unwrap_or(0.0) - 2_000.0).abs() < 2_000.0 / 16.0, "{point:?}");
        assert_eq!(point.requested_ops_per_sec, Some(100.0));
        assert!((point.achieved_ops_per_sec - 100.0).abs() < 1e-9);
    }

    #[test]
    fn table_shows_achieved_against_requested_and_failures() {
        let report = run(2, true, 1_950, 0, &["read_file a/b: byte 4096 is 0x00, wrote 0x5a"]);
        let text = table(&report);
        assert!(text.contains("swbuild against memfs: load 2, 4 processes"), "{text}");
        assert!(text.contains("195.0 ops/s achieved of 200.0 requested (97.5%)"), "{text}");
        let build_row = text.lines().find(|l| l.trim_start().starts_with("build")).unwrap_or_default();
        for cell in ["run", "195.0", "200.0", "97.5%"] {
            assert!(build_row.contains(cell), "{cell} missing from {build_row:?}");
        }
        assert!(text.contains("latency of phase build (run)"), "{text}");
        assert!(!text.contains("latency of phase setup"), "setup gets only its summary row: {text}");
        assert!(text.contains("write_file") && text.contains("2.00 ms") && text.contains("200.0 us"), "{text}");
        assert!(text.contains("achieved_fraction"), "{text}");
        assert!(text.contains("failures of phase build: 1"), "{text}");
        assert!(text.contains("read_file a/b: byte 4096 is 0x00, wrote 0x5a"), "{text}");
        assert!(!text.contains('\x1b'), "no colour codes");
        let every = table_with(&report, &TableOptions { latency_for_every_phase: true });
        assert!(every.contains("latency of phase setup (setup)"), "{every}");
    }

    #[test]
    fn table_columns_are_aligned() {
        let mut report = run(1, false, 1_000, 0, &[]);
        report.phases[0].name = "a-much-longer-setup-name".to_string();
        let text = table(&report);
        let lines: Vec<&str> = text.lines().skip_while(|l| *l != "phases").skip(1).take(3).collect();
        // Right-aligned number columns end at the same position: the lines of a table are as long.
        assert_eq!(lines.len(), 3);
        let ops_end = |line: &str| line.find("ops/s").map(|i| i + 5);
        let header_end = ops_end(lines[0]).unwrap_or(0);
        assert!(header_end > 0, "{text}");
        for line in &lines[1..] {
            let ch: Vec<char> = line.chars().collect();
            assert!(ch.get(header_end - 1).is_some_and(|c| c.is_ascii_digit()), "{line:?} in {text}");
            assert!(ch.get(header_end).is_some_and(|c| *c == ' '), "{line:?}");
        }
        assert!(text.contains("(closed loop)"), "{text}");
    }

    #[test]
    fn sweep_table_has_a_row_per_load_and_the_sustained_load() {
        let text = sweep_table(&sweep());
        for (load, pct) in [(1, "100.0%"), (2, "97.5%"), (3, "98.0%"), (4, "80.0%")] {
            let row = text.lines().find(|l| l.split_whitespace().next() == Some(&load.to_string()));
            assert!(row.is_some_and(|r| r.contains(pct)), "load {load}: {text}");
        }
        assert!(text.contains("op-weighted mean"), "{text}");
        assert!(text.contains("highest load achieving >= 95% of the requested rate: 2"), "{text}");
        let none = sweep_table(&[run(1, true, 10, 0, &[])]);
        assert!(none.contains("rate: none (no load did"), "{none}");
    }

    #[test]
    fn csv_has_one_row_per_interval_and_parses_back() {
        let runs = sweep();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("series.csv");
        write_csv(&path, &runs).expect("write csv");
        let text = std::fs::read_to_string(&path).expect("read csv");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        assert_eq!(header.join(","), CSV_HEADER);
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let intervals: usize = runs.iter().flat_map(|r| &r.phases).map(|p| p.series.len()).sum();
        assert_eq!(rows.len(), intervals);
        assert_eq!(intervals, 4 * 2 * 10, "10 one-second intervals per phase");
        for row in &rows {
            assert_eq!(row.len(), header.len(), "{row:?}");
            assert!(row[0].parse::<u64>().is_ok() && row[4].parse::<u64>().is_ok(), "{row:?}");
            for number in &row[3..] {
                assert!(number.parse::<f64>().is_ok_and(f64::is_finite), "{row:?}");
            }
        }
        // Load 2's build phase: 195 ops in each one-second interval, 19.5 of them 4 KiB writes.
        let row = rows.iter().find(|r| r[0] == "2" && r[1] == "build" && r[3] == "0.000");
        assert_eq!(row.map(|r| (r[2], r[4], r[5])), Some(("run", "195", "195.000")));
    }

    #[test]
    fn csv_quotes_phase_names_that_need_it() {
        let mut report = run(1, true, 100, 0, &[]);
        report.phases[1].name = "read, \"hard\"".to_string();
        let text = csv(&[report]);
        assert!(text.contains("\n1,\"read, \"\"hard\"\"\",run,0.000,"), "{text}");
    }

    #[test]
    fn json_holds_the_runs_and_the_sustained_load() {
        let runs = sweep();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sweep.json");
        write_json(&path, &runs).expect("write json");
        let text = std::fs::read_to_string(&path).expect("read json");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(value["workload"], "swbuild");
        assert_eq!(value["target"], "memfs");
        assert_eq!(value["highest_sustained_load_95"], 2);
        assert_eq!(value["runs"].as_array().map(Vec::len), Some(4));
        assert_eq!(value["runs"][1]["phases"][1]["ops"], 1_950);
        write_json(&path, &[]).expect("write empty json");
        let empty: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read json")).expect("valid json");
        assert!(empty["workload"].is_null() && empty["highest_sustained_load_95"].is_null());
    }

    /// Tags balance (a rough well-formedness check) and no number went NaN or infinite.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        let lower = svg.to_lowercase();
        assert!(!lower.contains("nan") && !lower.contains("inf"), "{svg}");
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').map(|e| start + e).unwrap_or_else(|| panic!("unclosed tag in {svg}"));
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "{tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name.trim()), "in {svg}");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap_or_default());
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed {open:?}");
    }

    #[test]
    fn svg_plots_every_load_without_nan() {
        let runs = sweep();
        let svg = svg_plot(&runs);
        assert_well_formed(&svg);
        for load in 1..=4 {
            assert!(svg.contains(&format!(">{load}</text>")), "load {load} label missing");
        }
        assert!(svg.contains("swbuild against memfs"));
        assert!(svg.contains("stroke-dasharray"), "a requested line");
        assert!(svg.contains("log scale"));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sweep.svg");
        write_svg(&path, &runs).expect("write svg");
        assert_eq!(std::fs::read_to_string(&path).expect("read svg"), svg);
    }

    #[test]
    fn svg_copes_with_one_run_closed_loop_zero_and_no_runs() {
        let one = svg_plot(&[run(8, true, 8_000, 0, &[])]);
        assert_well_formed(&one);
        assert!(one.contains(">8</text>") && one.contains("<circle"));
        let closed = svg_plot(&[run(1, false, 1_000, 0, &[]), run(3, false, 2_000, 0, &[])]);
        assert_well_formed(&closed);
        assert!(!closed.contains("requested"), "no requested line for closed-loop runs");
        let zero = svg_plot(&[run(1, true, 0, 0, &[]), run(2, true, 0, 0, &[])]);
        assert_well_formed(&zero);
        let mut empty_phases = run(3, false, 0, 0, &[]);
        empty_phases.phases.clear();
        assert_well_formed(&svg_plot(&[empty_phases]));
        assert_well_formed(&svg_plot(&[]));
        let crowded: Vec<RunReport> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]
            .into_iter()
            .map(|load| run(load, true, 100 * load, 0, &[]))
            .collect();
        let svg = svg_plot(&crowded);
        assert_well_formed(&svg);
        assert!(svg.contains("evenly spaced") && svg.contains(">1024</text>") && svg.contains(">1</text>"));
    }
}
