//! Tests of the fault hooks and coverage marks (compiled only with the `sim-hooks` feature:
//! `cargo test -p tessera-env --features sim-hooks`). Every test installs on its own test thread, so
//! tests running in parallel do not see each other's installations.

use std::collections::BTreeSet;

use crate::hooks::{
    self, BUGGIFY_SITES, EXTRA_MARKS, HookConfig, HookReport, RARE_MARKS, SiteReport, install, name_hash, site_enabled,
};

fn config(seed: u64) -> HookConfig {
    HookConfig { seed, buggify: true, site_enabled_per_million: 250_000, fire_per_million: 100_000 }
}

/// 1000 distinct site names (the macro needs literals; the function takes any `&'static str`).
fn site_names() -> Vec<&'static str> {
    (0..1000).map(|i| &*Box::leak(format!("test.site_{i}").into_boxed_str())).collect()
}

/// Evaluates each site `rounds` times in a fixed order; returns the report.
fn run(config: HookConfig, sites: &[&'static str], rounds: usize) -> HookReport {
    let installed = install(config);
    for _ in 0..rounds {
        for &site in sites {
            hooks::buggify_fire(site);
        }
    }
    installed.finish()
}

fn enabled_set(report: &HookReport) -> BTreeSet<&'static str> {
    report.sites.iter().filter(|(_, s)| s.enabled).map(|(&name, _)| name).collect()
}

#[test]
fn same_seed_same_decisions() {
    let sites = site_names();
    let a = run(config(7), &sites[..200], 20);
    let b = run(config(7), &sites[..200], 20);
    assert_eq!(a, b);
    assert!(a.sites.values().any(|s| s.fired > 0), "some site fires at these rates");
}

#[test]
fn enabling_does_not_depend_on_the_order_sites_are_reached() {
    let sites = site_names();
    let forward = run(config(11), &sites[..300], 1);
    let reversed: Vec<&'static str> = sites[..300].iter().rev().copied().collect();
    let backward = run(config(11), &reversed, 1);
    assert_eq!(enabled_set(&forward), enabled_set(&backward));
}

#[test]
fn different_seeds_enable_different_sets() {
    let sites = site_names();
    let a = enabled_set(&run(config(1), &sites, 1));
    let b = enabled_set(&run(config(2), &sites, 1));
    assert_ne!(a, b);
}

#[test]
fn roughly_the_configured_fraction_of_sites_is_enabled() {
    let sites = site_names();
    for (seed, per_million) in [(3, 250_000u32), (4, 500_000), (5, 50_000)] {
        let cfg = HookConfig { site_enabled_per_million: per_million, ..config(seed) };
        let enabled = enabled_set(&run(cfg, &sites, 1)).len() as f64;
        let expected = per_million as f64 / 1_000_000.0 * 1000.0;
        // Binomial(1000, p): four standard deviations.
        let sigma = (1000.0 * (per_million as f64 / 1e6) * (1.0 - per_million as f64 / 1e6)).sqrt();
        assert!((enabled - expected).abs() <= 4.0 * sigma + 1.0, "{enabled} enabled, expected about {expected}");
    }
    // The extremes are exact.
    let none = run(HookConfig { site_enabled_per_million: 0, ..config(6) }, &sites, 3);
    assert!(none.sites.values().all(|s| !s.enabled && s.fired == 0 && s.evaluated == 3));
    let all =
        run(HookConfig { site_enabled_per_million: 1_000_000, fire_per_million: 1_000_000, ..config(6) }, &sites, 2);
    assert!(all.sites.values().all(|s| s.enabled && s.fired == 2));
}

#[test]
fn an_enabled_site_fires_at_roughly_the_configured_rate() {
    let cfg = HookConfig { site_enabled_per_million: 1_000_000, fire_per_million: 100_000, ..config(8) };
    let report = run(cfg, &["test.rate"], 10_000);
    let fired = report.sites["test.rate"].fired;
    assert!((800..=1200).contains(&fired), "fired {fired} of 10000 at 10%");
}

#[test]
fn the_enable_decision_is_a_pure_function_of_seed_and_name() {
    let name = name_hash("store.checkpoint_early");
    let decisions: Vec<bool> = (0..64).map(|seed| site_enabled(seed, name, 500_000)).collect();
    assert_eq!(decisions, (0..64).map(|seed| site_enabled(seed, name, 500_000)).collect::<Vec<_>>());
    assert!(decisions.contains(&true) && decisions.contains(&false));
}

#[test]
fn nothing_fires_or_records_without_install() {
    assert!(!hooks::installed());
    let always = HookConfig { site_enabled_per_million: 1_000_000, fire_per_million: 1_000_000, ..config(9) };
    for _ in 0..100 {
        assert!(!crate::buggify!("test.uninstalled"));
        crate::mark!("test.uninstalled");
    }
    assert_eq!(hooks::report(), HookReport::default());
    // After an installation ends, the thread is inert again.
    let installed = install(always);
    assert!(crate::buggify!("test.uninstalled"));
    drop(installed);
    assert!(!hooks::installed());
    assert!(!crate::buggify!("test.uninstalled"));
    crate::mark!("test.uninstalled");
    assert_eq!(hooks::report(), HookReport::default());
}

#[test]
fn buggify_false_never_fires_but_counts() {
    let cfg = HookConfig { buggify: false, site_enabled_per_million: 1_000_000, fire_per_million: 1_000_000, seed: 1 };
    let installed = install(cfg);
    for _ in 0..50 {
        assert!(!crate::buggify!("test.off"));
    }
    let report = installed.finish();
    assert_eq!(report.sites["test.off"], SiteReport { enabled: false, evaluated: 50, fired: 0 });
}

#[test]
fn marks_are_counted() {
    let installed = install(config(10));
    for _ in 0..3 {
        crate::mark!("test.mark_a");
    }
    crate::mark!("test.mark_b");
    let seen = installed.report();
    assert_eq!(seen.mark_count("test.mark_a"), 3);
    assert_eq!(seen.mark_count("test.mark_b"), 1);
    assert_eq!(seen.mark_count("test.never"), 0);
    assert_eq!(seen.rare_marks_missed().len(), RARE_MARKS.len());
    crate::mark!("store.torn_record_recovered");
    let done = installed.finish();
    assert!(!done.rare_marks_missed().contains(&"store.torn_record_recovered"));
    assert_eq!(done.marks.len(), 3);
}

#[test]
#[should_panic(expected = "already installed")]
fn installing_twice_panics() {
    let _first = install(config(1));
    let _second = install(config(2));
}

#[test]
#[should_panic(expected = "millionths")]
fn probabilities_above_one_are_refused() {
    let _ = install(HookConfig { fire_per_million: 1_000_001, ..config(1) });
}

#[test]
fn name_lists_are_unique_and_well_formed() {
    let names: Vec<&str> = RARE_MARKS.iter().chain(&EXTRA_MARKS).chain(&BUGGIFY_SITES).map(|(name, _)| *name).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "a name is listed twice");
    for name in names {
        let (area, what) = name.split_once('.').expect("names are area.what");
        assert!(!area.is_empty() && !what.is_empty() && !what.contains('.'), "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'), "{name}");
    }
}

#[test]
fn quiesce_stops_firing_but_keeps_counting() {
    let all = hooks::PER_MILLION;
    let guard = install(HookConfig { seed: 7, buggify: true, site_enabled_per_million: all, fire_per_million: all });
    assert!(hooks::buggify_fire("test.always"));
    hooks::quiesce();
    assert!(!hooks::buggify_fire("test.always"));
    let report = guard.finish();
    assert_eq!(report.sites["test.always"].evaluated, 2);
    assert_eq!(report.sites["test.always"].fired, 1);
}
