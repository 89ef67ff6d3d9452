//! The campaign runner: the result-line parser, seed ranges, and whole campaigns of `sh -c` children.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tessera_faults::campaign::{
    CampaignConfig, ProgressMode, ResultLine, parse_result_line, parse_seed_range, run_campaign,
};

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn parses_a_pass_line_with_metrics_and_count_maps() {
    let line = "seed=17 trace_hash=47dba8f55811b464 result=pass writes=19 reads=15 \
                marks=store.torn_record_recovered:2,data.degraded_read:5 sites=a:1,a:2 mode=over-budget";
    let parsed = parse_result_line(line).unwrap();
    assert_eq!(parsed.seed, 17);
    assert_eq!(parsed.trace_hash.as_deref(), Some("47dba8f55811b464"));
    assert!(parsed.passed);
    assert_eq!(parsed.reason, None);
    assert_eq!(parsed.replay, None);
    assert_eq!(parsed.metrics, counts(&[("writes", 19), ("reads", 15)]));
    assert_eq!(parsed.count_maps["marks"], counts(&[("store.torn_record_recovered", 2), ("data.degraded_read", 5)]));
    assert_eq!(parsed.count_maps["sites"], counts(&[("a", 3)]));
    assert_eq!(parsed.other["mode"], "over-budget");
}

#[test]
fn parses_a_fail_line_with_quotes_and_escapes() {
    let line = r#"seed=7 trace_hash=9c0e5b1d2a7f4e83 result=fail reason="n3 lost \"acked\" disk0\\extent#12: gone" replay="cargo run -p tessera-sim -- replay 7""#;
    let parsed = parse_result_line(line).unwrap();
    assert!(!parsed.passed);
    assert_eq!(parsed.reason.as_deref(), Some(r#"n3 lost "acked" disk0\extent#12: gone"#));
    assert_eq!(parsed.replay.as_deref(), Some("cargo run -p tessera-sim -- replay 7"));
    // Quoted values are text even when they look like numbers or count maps; empty values are allowed.
    let parsed = parse_result_line(r#"seed=1 result=pass n="12" m="a:1" empty="" bare= word=abc"#).unwrap();
    assert!(parsed.metrics.is_empty() && parsed.count_maps.is_empty());
    assert_eq!(parsed.other["n"], "12");
    assert_eq!(parsed.other["m"], "a:1");
    assert_eq!(parsed.other["empty"], "");
    assert_eq!(parsed.other["bare"], "");
    assert_eq!(parsed.other["word"], "abc");
    // Whitespace between pairs is free, a trailing \r is dropped, trace_hash is optional.
    let parsed = parse_result_line("  seed=2\tresult=pass   x=1 \r").unwrap();
    assert_eq!(parsed, ResultLine { seed: 2, passed: true, metrics: counts(&[("x", 1)]), ..ResultLine::default() });
}

#[test]
fn odd_values_are_text_not_metrics() {
    let parsed =
        parse_result_line("seed=3 result=pass big=99999999999999999999 neg=-1 t=12:30:00 m=a:1,b m2=:3").unwrap();
    assert!(parsed.metrics.is_empty(), "{:?}", parsed.metrics);
    assert!(parsed.count_maps.is_empty(), "{:?}", parsed.count_maps);
    assert_eq!(parsed.other.len(), 5);
}

#[test]
fn rejects_broken_lines() {
    for (line, words) in [
        ("seed=1 trace_hash=ab", "no result"),
        ("trace_hash=ab result=pass", "no seed"),
        ("seed=x result=pass", "seed"),
        ("seed=-1 result=pass", "seed"),
        ("seed=1 result=maybe", "pass or fail"),
        ("seed=1 result=pass result=fail", "twice"),
        ("seed=1 trace_hash=xyz result=pass", "trace_hash"),
        ("seed=1 trace_hash=00112233445566778 result=pass", "trace_hash"),
        ("seed=1 trace_hash= result=pass", "trace_hash"),
        ("seed=1 result=fail reason=\"never closed", "closing quote"),
        ("seed=1 result=fail reason=\"bad \\n escape\"", "escape"),
        ("seed=1 result=fail reason=\"lone \\", "backslash"),
        ("seed=1 result=fail reason=\"a\"b", "followed"),
        ("seed=1 result=fail reason=a\"b\"", "quote"),
        ("seed=1 result=pass garbage", "key=value"),
        ("seed=1 result=pass =5", "bad key"),
        ("seed=1 result=pass k!y=5", "bad key"),
        ("hello world", "key=value"),
        ("", "no seed"),
    ] {
        let e = parse_result_line(line).expect_err(line);
        assert!(e.contains(words), "{line:?}: {e:?} does not mention {words:?}");
    }
}

#[test]
fn seed_ranges() {
    assert_eq!(parse_seed_range("0..1000"), Ok(0..1000));
    assert_eq!(parse_seed_range(" 5..=7 "), Ok(5..8));
    assert_eq!(parse_seed_range("42"), Ok(42..43));
    assert_eq!(parse_seed_range("3..=3"), Ok(3..4));
    assert_eq!(parse_seed_range("0..=18446744073709551614"), Ok(0..u64::MAX));
    for (text, words) in [
        ("", "empty"),
        ("  ", "empty"),
        ("5..5", "empty"),
        ("7..3", "empty"),
        ("7..=3", "empty"),
        ("..5", "start is missing"),
        ("5..", "end is missing"),
        ("5..=", "end is missing"),
        ("a..5", "not a seed number"),
        ("1..b", "not a seed number"),
        ("-1..5", "not a seed number"),
        ("1...5", "not a seed number"),
        ("x", "not a seed number"),
        ("99999999999999999999", "64 bits"),
        ("0..99999999999999999999", "64 bits"),
        ("0..=18446744073709551615", "largest seed"),
        ("18446744073709551615", "largest seed"),
    ] {
        let e = parse_seed_range(text).expect_err(text);
        assert!(e.contains(words), "{text:?}: {e:?} does not mention {words:?}");
    }
}

/// A child that prints `stdout.S` to stdout and `stderr.S` to stderr from `dir`, then runs `tail.S`.
fn scripted(dir: &Path, seed: u64, stdout: &str, stderr: &str, tail: &str) {
    std::fs::write(dir.join(format!("stdout.{seed}")), stdout).unwrap();
    std::fs::write(dir.join(format!("stderr.{seed}")), stderr).unwrap();
    std::fs::write(dir.join(format!("tail.{seed}")), tail).unwrap();
}

fn scripted_command(dir: &Path, seed: u64) -> Command {
    let mut command = Command::new("sh");
    command.current_dir(dir).arg("-c").arg(format!("cat stdout.{seed}; cat stderr.{seed} >&2; . ./tail.{seed}"));
    command
}

#[test]
fn campaign_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scripted(
        d,
        100,
        "starting\nseed=100 trace_hash=00a1 result=pass writes=3 reads=2 marks=a:1,b:2\n",
        "some log\n",
        "exit 0",
    );
    scripted(
        d,
        101,
        "seed=101 result=fail reason=\"an earlier line\"\nseed=101 trace_hash=00b2 result=pass writes=4 marks=b:3,c:1 sites=x:1\nafter\n",
        "",
        "exit 0",
    );
    scripted(
        d,
        102,
        "seed=102 trace_hash=0c result=fail writes=100 reason=\"lost \\\"acked\\\" bytes\" replay=\"sim data --seed 102\"\n",
        "",
        "exit 1",
    );
    scripted(d, 103, "seed=103 trace_hash=0d result=fail reason=\"no replay given\"\n", "", "exit 1");
    scripted(d, 104, "just chatter\n", "panicked at src/x.rs:1\nbacktrace line 1\nbacktrace line 2\n", "exit 0");
    let mut long = String::new();
    for i in 0..2000 {
        long.push_str(&format!("stderr line {i}\n"));
    }
    scripted(d, 105, "", &long, "exit 101");
    scripted(d, 106, "seed=106 trace_hash=0e result=pass\n", "oops after pass\n", "exit 2");
    scripted(d, 107, "seed=107 trace_hash=0f result=pass\n", "", "sleep 20; echo never");
    scripted(d, 108, "", "", "kill -9 $$");
    scripted(d, 109, "seed=109 trace_hash=10 result=maybe\n", "", "exit 0");
    scripted(d, 110, "seed=7 trace_hash=11 result=pass\n", "", "exit 0");
    scripted(d, 111, "seed=111 trace_hash=12 result=pass\n", "", "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 0");

    let json = d.join("out/nested/summary.json");
    let config = CampaignConfig {
        label: "campaign".to_string(),
        seeds: 100..112,
        jobs: 3,
        seed_timeout_s: 3,
        json_path: Some(json.clone()),
        progress: ProgressMode::Lines,
    };
    let mut out = Vec::new();
    let summary = run_campaign(&config, &|seed| scripted_command(d, seed), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    println!("{out}");

    assert_eq!((summary.seeds_run, summary.passed, summary.failed), (12, 3, 9));
    assert!(!summary.all_passed());
    assert!(out.ends_with("campaign seeds=12 passed=3 failed=9\n"), "{out}");
    assert_eq!(out.lines().count(), 9 * 2 + 1, "{out}");
    // Every failure is a FAIL line followed by its replay line.
    let lines: Vec<&str> = out.lines().collect();
    for pair in lines[..18].chunks(2) {
        assert!(pair[0].starts_with("FAIL seed="), "{out}");
        assert!(pair[1].starts_with("  replay: "), "{out}");
    }
    let fail_of = |seed: u64| -> (String, String) {
        let at = lines.iter().position(|l| l.starts_with(&format!("FAIL seed={seed}: "))).unwrap_or_else(|| {
            panic!("no FAIL line for seed {seed}:\n{out}");
        });
        (lines[at].to_string(), lines[at + 1].to_string())
    };
    assert_eq!(fail_of(102).0, "FAIL seed=102: lost \"acked\" bytes");
    assert_eq!(fail_of(102).1, "  replay: sim data --seed 102");
    assert_eq!(fail_of(103).0, "FAIL seed=103: no replay given");
    let replay = fail_of(103).1;
    assert!(replay.starts_with("  replay: cd "), "{replay}");
    assert!(replay.ends_with(" && sh -c 'cat stdout.103; cat stderr.103 >&2; . ./tail.103'"), "{replay}");
    let (line, _) = fail_of(104);
    assert!(line.contains("exit code 0 without a result line"), "{line}");
    assert!(line.contains("panicked at src/x.rs:1 | backtrace line 1 | backtrace line 2"), "{line}");
    let (line, _) = fail_of(105);
    assert!(line.contains("exit code 101"), "{line}");
    assert!(line.ends_with("stderr line 1997 | stderr line 1998 | stderr line 1999"), "{line}");
    let (line, _) = fail_of(106);
    assert!(line.contains("result=pass but exited with exit code 2") && line.contains("oops after pass"), "{line}");
    assert_eq!(fail_of(107).0, "FAIL seed=107: timed out after 3 s");
    let (line, _) = fail_of(108);
    assert!(line.contains("signal") && line.contains('9'), "{line}");
    let (line, _) = fail_of(109);
    assert!(line.contains("unparseable result line") && line.contains("result=maybe"), "{line}");
    let (line, _) = fail_of(110);
    assert!(line.contains("seed 7, not seed 110"), "{line}");

    // The summary, and the JSON written from it.
    let failed: Vec<u64> = summary.failures.iter().map(|f| f.seed).collect();
    assert_eq!(failed, (102..=110).collect::<Vec<_>>());
    assert_eq!(summary.totals, counts(&[("writes", 107), ("reads", 2)]));
    assert_eq!(summary.count_maps["marks"], counts(&[("a", 1), ("b", 5), ("c", 1)]));
    assert_eq!(summary.count_maps["sites"], counts(&[("x", 1)]));
    let text = std::fs::read_to_string(&json).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["label"], "campaign");
    assert_eq!(value["seed_range"]["start"], 100);
    assert_eq!(value["seed_range"]["end"], 112);
    assert_eq!(value["jobs"], 3);
    assert_eq!(value["seeds_run"], 12);
    assert_eq!(value["passed"], 3);
    assert_eq!(value["failed"], 9);
    assert!(value["wall_time_s"].as_f64().unwrap() > 0.0);
    assert!(value["seeds_per_min_per_core"].as_f64().unwrap() > 0.0);
    assert_eq!(value["failures"][0]["seed"], 102);
    assert_eq!(value["failures"][0]["reason"], "lost \"acked\" bytes");
    assert_eq!(value["failures"][0]["replay"], "sim data --seed 102");
    assert_eq!(value["totals"]["writes"], 107);
    assert_eq!(value["count_maps"]["marks"]["b"], 5);
    let seeds = value["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 12);
    assert_eq!(seeds[0], serde_json::json!({"seed": 100, "passed": true, "trace_hash": "00a1"}));
    assert_eq!(seeds[1], serde_json::json!({"seed": 101, "passed": true, "trace_hash": "00b2"}));
    assert_eq!(seeds[2], serde_json::json!({"seed": 102, "passed": false, "trace_hash": "0c"}));
    assert_eq!(seeds[4], serde_json::json!({"seed": 104, "passed": false, "trace_hash": null}));
    let order: Vec<u64> = seeds.iter().map(|s| s["seed"].as_u64().unwrap()).collect();
    assert_eq!(order, (100..112).collect::<Vec<_>>());
    // The JSON reads back as the summary.
    let back: tessera_faults::campaign::CampaignSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, summary);
}

/// Each child records when it started and ended (ns) in `dir`, then passes.
fn timed_command(dir: &Path, seed: u64) -> Command {
    let mut command = Command::new("sh");
    command.current_dir(dir).arg("-c").arg(format!(
        "date +%s%N > start.{seed}; sleep 0.05; date +%s%N > end.{seed}; echo seed={seed} trace_hash=1 result=pass"
    ));
    command
}

fn read_ns(dir: &Path, name: String) -> u128 {
    std::fs::read_to_string(dir.join(name)).unwrap().trim().parse().unwrap()
}

/// The most children whose recorded intervals overlap. A recorded interval lies inside its process's
/// lifetime, so this never exceeds the number of processes alive at once.
fn max_overlap(dir: &Path, seeds: std::ops::Range<u64>) -> usize {
    let spans: Vec<(u128, u128)> =
        seeds.map(|s| (read_ns(dir, format!("start.{s}")), read_ns(dir, format!("end.{s}")))).collect();
    spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start <= e).count()).max().unwrap()
}

#[test]
fn jobs_bound_the_children_alive() {
    for jobs in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = CampaignConfig {
            label: format!("jobs{jobs}"),
            seeds: 0..8,
            jobs,
            seed_timeout_s: 60,
            json_path: None,
            progress: ProgressMode::Off,
        };
        let mut out = Vec::new();
        let summary = run_campaign(&config, &|seed| timed_command(d, seed), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "campaign seeds=8 passed=8 failed=0\n".to_string());
        assert!(summary.all_passed());
        assert!(max_overlap(d, 0..8) <= jobs, "jobs={jobs}");
        if jobs == 1 {
            // One at a time, in seed order.
            let starts: Vec<u128> = (0..8).map(|s| read_ns(d, format!("start.{s}"))).collect();
            assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
        }
    }
}

#[test]
fn edge_cases() {
    let mut config = CampaignConfig::new("edge", 5..5);
    config.progress = ProgressMode::Off;
    config.jobs = 0;
    let mut out = Vec::new();
    let e = run_campaign(&config, &|_| Command::new("true"), &mut out).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);

    config.jobs = 4;
    let summary = run_campaign(&config, &|_| Command::new("true"), &mut out).unwrap();
    assert_eq!((summary.seeds_run, summary.passed, summary.failed), (0, 0, 0));
    assert_eq!(String::from_utf8(std::mem::take(&mut out)).unwrap(), "campaign seeds=0 passed=0 failed=0\n");

    // A program that cannot start fails every seed, with the command as the replay.
    config.seeds = 0..2;
    let summary = run_campaign(
        &config,
        &|seed| {
            let mut c = Command::new("/nonexistent/tessera-sim");
            c.arg(seed.to_string());
            c
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(summary.failed, 2);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("FAIL seed=0: cannot start /nonexistent/tessera-sim"), "{out}");
    assert!(out.contains("  replay: /nonexistent/tessera-sim 1\n"), "{out}");
    assert!(out.ends_with("campaign seeds=2 passed=0 failed=2\n"), "{out}");
}

#[test]
fn progress_modes_parse() {
    assert_eq!("auto".parse::<ProgressMode>(), Ok(ProgressMode::Auto));
    assert_eq!("lines".parse::<ProgressMode>(), Ok(ProgressMode::Lines));
    assert_eq!("off".parse::<ProgressMode>(), Ok(ProgressMode::Off));
    assert!("bar".parse::<ProgressMode>().unwrap_err().contains("auto, lines or off"));
}
