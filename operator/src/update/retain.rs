//! What the nodes keep while a model update is under way (pure). A deployment's own rollout
//! can promote the candidate and scale the old variant to zero long before the model promotes
//! it (the model waits for every deployment), and a rollback elsewhere then sends this
//! deployment back to the old file. So while a model has a live candidate (`status.candidate`
//! set, not rolled back) every serving pod of every deployment using it keeps both revisions
//! on its node (`serve --keep-file`, fed from the routing ConfigMap, see
//! [`crate::build::keep`]); once the candidate is promoted or rolled back the list drops them,
//! and each pod keeps only the file it serves.

use std::collections::{BTreeMap, BTreeSet};

use llamafleet_crds::LlmModel;

use crate::deployment::plan::ResolvedModel;

/// The sha256s (lowercase, sorted) to keep for a deployment using `models` (by name; `None`
/// where missing): the resolved and the candidate file of each model with a live candidate.
/// A revision whose sha256 is not known yet is left out (no node can hold it by hash).
pub fn keep(models: &BTreeMap<String, Option<LlmModel>>) -> Vec<String> {
    let mut keep = BTreeSet::new();
    for model in models.values().flatten() {
        let candidate = model
            .status
            .as_ref()
            .and_then(|s| s.candidate.as_ref())
            .filter(|c| c.rolled_back.is_none());
        let Some(candidate) = candidate else {
            continue;
        };
        let resolved = ResolvedModel::from_spec_and_status(model).sha256;
        keep.extend(
            [resolved, candidate.sha256.clone()]
                .iter()
                .flatten()
                .filter_map(|s| llamafleet_remote::parse_sha256(s)),
        );
    }
    keep.into_iter().collect()
}
