//! The pure parts of `route`: the weighted sticky choice, the table checks and the key files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_agent::route::choose::{by_name, pick, pick_other, random_key};
use llamafleet_agent::route::keys::KeySet;
use llamafleet_agent::route::table::{self, TableError};
use llamafleet_crds::routing::RoutedVariant;

fn variants(weights: &[(&str, i32)]) -> Vec<RoutedVariant> {
    weights
        .iter()
        .map(|(name, weight)| RoutedVariant {
            name: (*name).into(),
            url: format!("http://{name}:8080"),
            weight: *weight,
            model: "m".into(),
            deployment: None,
            replicas: None,
        })
        .collect()
}

/// Every variant usable (none ejected).
fn any(_: &RoutedVariant) -> bool {
    true
}

fn shares(table: &[RoutedVariant], choose: impl Fn(usize) -> usize) -> Vec<f64> {
    let mut counts = vec![0u32; table.len()];
    for i in 0..10_000 {
        counts[choose(i)] += 1;
    }
    counts.iter().map(|&c| f64::from(c) / 10_000.0).collect()
}

#[test]
fn weighted_split_over_10000_decisions_follows_the_weights() {
    let table = variants(&[("blue", 70), ("green", 20), ("canary", 10), ("shadow", 0)]);
    // Sticky keys and random draws both split by weight (3 sigma of a binomial at n=10000 is
    // under 1.4 points); a weight-0 variant gets nothing.
    let sticky = shares(&table, |i| {
        pick(&table, format!("client-{i}").as_bytes(), any).unwrap()
    });
    let random = shares(&table, |_| pick(&table, &random_key(), any).unwrap());
    for split in [sticky, random] {
        for (got, want) in split.iter().zip([0.70, 0.20, 0.10, 0.0]) {
            assert!((got - want).abs() < 0.02, "split {split:?}");
        }
    }
}

#[test]
fn an_ejected_variants_share_goes_to_the_others_by_weight_and_retries_follow_it() {
    let table = variants(&[("blue", 60), ("green", 30), ("canary", 10), ("off", 0)]);
    let not_blue = |v: &RoutedVariant| v.name != "blue";
    let split = shares(&table, |i| {
        pick(&table, format!("client-{i}").as_bytes(), not_blue).unwrap()
    });
    for (got, want) in split.iter().zip([0.0, 0.75, 0.25, 0.0]) {
        assert!((got - want).abs() < 0.02, "split {split:?}");
    }
    // Keys that were on green stay there: only blue's keys move.
    for i in 0..1000 {
        let key = format!("client-{i}");
        let before = pick(&table, key.as_bytes(), any).unwrap();
        let after = pick(&table, key.as_bytes(), not_blue).unwrap();
        assert!(before == 0 || before == after, "{key} moved off {before}");
    }
    // Every variant with weight ejected: they are still tried, by weight.
    let none = |_: &RoutedVariant| false;
    assert!(pick(&table, b"k", none).is_some_and(|i| i < 3));
    // A retry goes to another variant with weight, split as the weights say...
    let retries = shares(&table, |i| {
        pick_other(&table, format!("client-{i}").as_bytes(), 0, any).unwrap()
    });
    for (got, want) in retries.iter().zip([0.0, 0.75, 0.25, 0.0]) {
        assert!((got - want).abs() < 0.02, "retries {retries:?}");
    }
    // ...never to an ejected one or one without weight, and nowhere when none is left.
    let only_canary = |v: &RoutedVariant| v.name == "canary" || v.name == "off";
    assert_eq!(pick_other(&table, b"k", 0, only_canary), Some(2));
    let two = variants(&[("blue", 100), ("off", 0)]);
    assert_eq!(pick_other(&two, b"k", 0, any), None);
}

#[test]
fn a_key_stays_put_and_weight_changes_move_only_the_keys_they_must() {
    let before = variants(&[("blue", 90), ("green", 10)]);
    let after = variants(&[("blue", 50), ("green", 50)]);
    let mut moved = 0;
    for i in 0..10_000 {
        let key = format!("key-{i}");
        let first = pick(&before, key.as_bytes(), any).unwrap();
        for _ in 0..3 {
            assert_eq!(
                pick(&before, key.as_bytes(), any),
                Some(first),
                "not sticky"
            );
        }
        let now = pick(&after, key.as_bytes(), any).unwrap();
        if now != first {
            // Raising green only ever takes keys towards green.
            assert_eq!((first, now), (0, 1));
            moved += 1;
        }
    }
    // The minimum is the 40% green gained; rendezvous hashing moves about that many.
    let share = f64::from(moved) / 10_000.0;
    assert!((share - 0.40).abs() < 0.03, "moved {share}");
}

#[test]
fn all_zero_weights_split_evenly_and_names_pin() {
    let table = variants(&[("a", 0), ("b", 0)]);
    let split = shares(&table, |i| pick(&table, &i.to_le_bytes(), any).unwrap());
    assert!((split[0] - 0.5).abs() < 0.03, "{split:?}");
    assert_eq!(by_name(&table, "b"), Some(1));
    assert_eq!(by_name(&table, "c"), None);
    assert_eq!(pick(&[], b"k", any), None);
}

#[test]
fn bad_tables_are_typed_errors() {
    let ok = "variants: [{name: a, url: 'http://a:8080', weight: 100, model: m}]\ntiers: []\nrouterReplicas: 2\n";
    assert_eq!(table::parse(ok).unwrap().revision(), "a=100");
    assert!(matches!(
        table::parse("variants: ["),
        Err(TableError::Parse { .. })
    ));
    let cases = [
        (
            "variants: []\ntiers: []\nrouterReplicas: 1\n",
            "no variants",
        ),
        (
            "variants: [{name: a, url: 'ftp://a', weight: 1, model: m}]\ntiers: []\nrouterReplicas: 1\n",
            "http",
        ),
        (
            "variants: [{name: a, url: 'http://a', weight: 1, model: m}]\ntiers: []\nrouterReplicas: 1\nshadow: {variant: b, percent: 5}\n",
            "shadow variant",
        ),
    ];
    for (text, problem) in cases {
        match table::parse(text) {
            Err(TableError::Invalid { problem: p, .. }) => assert!(p.contains(problem), "{p}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    let missing = table::load(std::path::Path::new("/nonexistent/routing.yaml"));
    assert!(matches!(missing, Err(TableError::Read { .. })));
}

#[test]
fn key_files_name_the_client_and_its_tier() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alice"), "free:key-a\n").unwrap();
    std::fs::write(dir.path().join("bob"), "gold:key-b").unwrap();
    std::fs::write(dir.path().join("eve"), "nokey").unwrap();
    std::fs::write(dir.path().join("mallory"), "premium:key-a").unwrap();
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    let keys = KeySet::load(dir.path(), &["free", "premium"]).unwrap();
    let alice = keys.client("key-a").unwrap();
    assert_eq!(
        (alice.name.as_str(), alice.tier.as_str()),
        ("alice", "free")
    );
    assert!(keys.client("key-b").is_none(), "unknown tier gold accepted");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.rejected.len(), 3, "{:?}", keys.rejected);
    assert!(KeySet::load(&dir.path().join("missing"), &[]).is_err());
}
