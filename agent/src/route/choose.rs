//! Which variant answers a request: weighted rendezvous hashing.
//!
//! Every variant scores `weight / -ln(h)`, where `h` in (0, 1) is a hash of the sticky key and
//! the variant's name; the highest score wins. The winner is variant `i` with probability
//! `weight_i / Σ weight`, the same key keeps its variant while the weights stay put, and a
//! weight change moves only the keys it must (raising one variant's weight takes keys only
//! towards it). Requests without a sticky key draw a random point instead.

use llamafleet_crds::routing::RoutedVariant;
use sha2::{Digest, Sha256};

/// The index of the variant a sticky `key` goes to, among variants with a positive weight
/// (all of them when none has one) that `usable` admits (not ejected: [`super::outliers`]);
/// when it admits none of them, among all of them (a fleet failing everywhere is still
/// tried). `None` for an empty table.
pub fn pick(
    variants: &[RoutedVariant],
    key: &[u8],
    usable: impl Fn(&RoutedVariant) -> bool,
) -> Option<usize> {
    best(variants, key, &usable).or_else(|| best(variants, key, &|_| true))
}

/// Where a request that failed on variant `failed` goes next: the key's choice among the
/// other usable variants with weight (or among all others when no variant has weight), so
/// its share is spread as the weights say; `None` when there is no such variant.
pub fn pick_other(
    variants: &[RoutedVariant],
    key: &[u8],
    failed: usize,
    usable: impl Fn(&RoutedVariant) -> bool,
) -> Option<usize> {
    let other = |v: &RoutedVariant| v.name != variants[failed].name && usable(v);
    best(variants, key, &other)
}

/// A random key for a request without a sticky one.
pub fn random_key() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

/// The index of the variant named `name`.
pub fn by_name(variants: &[RoutedVariant], name: &str) -> Option<usize> {
    variants.iter().position(|v| v.name == name)
}

fn best(
    variants: &[RoutedVariant],
    key: &[u8],
    usable: &dyn Fn(&RoutedVariant) -> bool,
) -> Option<usize> {
    let any_weight = variants.iter().any(|v| v.weight > 0);
    variants
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let weight = match (any_weight, v.weight) {
                (true, w) if w > 0 => f64::from(w),
                (true, _) => return None,
                (false, _) => 1.0,
            };
            usable(v).then(|| (i, weight / -unit_hash(key, &v.name).ln()))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// A hash of `(key, name)` mapped into the open interval (0, 1).
fn unit_hash(key: &[u8], name: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // 53 bits fill an f64 mantissa exactly; +0.5 keeps the value off 0 and 1.
    ((u64::from_le_bytes(bytes) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}
