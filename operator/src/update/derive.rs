//! The deployment as the plan sees it while a model update passes through it (pure): the spec
//! with the update variants added and the weights they are to take.

use std::collections::BTreeMap;

use llamafleet_crds::rules::VARIANTS_MAX;
use llamafleet_crds::{LlmDeploymentSpec, LlmDeploymentStatus, LlmModel, RolloutSpec};

use super::{candidate_tag, model_key, progressive, resolved_tag, rolling_to, variant_name};
use crate::deployment::plan::ResolvedModel;
use crate::names;

/// What the plan is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The spec with the update variants in it.
    pub spec: LlmDeploymentSpec,
    /// The revisions the update variants serve, by [`super::model_key`].
    pub models: BTreeMap<String, ResolvedModel>,
    /// The update variants, for logs and the status.
    pub updates: Vec<Update>,
    /// Update variants that could not be added, and why (said in an Event).
    pub skipped: Vec<String>,
}

/// One update variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The variant it replaces.
    pub variant: String,
    /// The update variant.
    pub update: String,
    /// `false`: it takes the variant's weight (the candidate rolls out); `true`: it gives the
    /// weight back and goes away.
    pub handing_back: bool,
}

/// The spec of `name` as the plan sees it, given the models it names and its last status.
///
/// While a model rolls a candidate out to this deployment, each variant of that model with
/// traffic gets an update variant serving the candidate with the variant's weight (the
/// variant keeps its objects at weight 0, so the rollout moves traffic from one to the other).
/// After the model promoted or rolled the candidate back, an update variant that still has
/// weight or replicas in the status stays, with weight 0, and the variant is promoted back at
/// once (`rollout.promote`): it serves the resolved file, the same bytes as after a promotion,
/// or the file it served before after a rollback.
pub fn effective(
    name: &str,
    spec: &LlmDeploymentSpec,
    status: Option<&LlmDeploymentStatus>,
    models: &BTreeMap<String, Option<LlmModel>>,
) -> Effective {
    let mut out = Effective {
        spec: spec.clone(),
        models: BTreeMap::new(),
        updates: Vec::new(),
        skipped: Vec::new(),
    };
    let mut variants = Vec::with_capacity(spec.variants.len() + 1);
    let mut promote = None;
    for v in &spec.variants {
        let model = models.get(&v.model).and_then(Option::as_ref);
        let Some(model) = model.filter(|_| v.weight > 0) else {
            variants.push(v.clone());
            continue;
        };
        let rolling = progressive(spec)
            .then(|| rolling_to(model, name))
            .flatten()
            .map(|c| (candidate_tag(c), ResolvedModel::from_candidate(model, c)));
        let (tag, served, handing_back) = match rolling {
            Some((tag, served)) => (tag, served, false),
            None => match handing_back(v.name.as_str(), model, status) {
                Some((tag, served)) => (tag, served, true),
                None => {
                    variants.push(v.clone());
                    continue;
                }
            },
        };
        let update = variant_name(&v.name, &tag);
        if let Err(why) = fits(name, &update, spec.variants.len() + out.updates.len()) {
            out.skipped.push(why);
            variants.push(v.clone());
            continue;
        }
        let key = model_key(&v.model, &tag);
        let (mut base, mut new) = (v.clone(), v.clone());
        new.name.clone_from(&update);
        new.model.clone_from(&key);
        if handing_back {
            new.weight = 0;
            promote = Some(v.name.clone());
        } else {
            base.weight = 0;
        }
        variants.push(base);
        variants.push(new);
        out.models.insert(key, served);
        out.updates.push(Update {
            variant: v.name.clone(),
            update,
            handing_back,
        });
    }
    out.spec.variants = variants;
    if let Some(variant) = promote {
        let rollout = out.spec.rollout.get_or_insert_with(RolloutSpec::default);
        rollout.promote = Some(variant);
    }
    out
}

/// The update variant of `variant` that the status still shows with weight or replicas, and
/// the file it serves: the resolved one (the candidate was promoted) or the candidate (it
/// was rolled back elsewhere after this deployment promoted it).
fn handing_back(
    variant: &str,
    model: &LlmModel,
    status: Option<&LlmDeploymentStatus>,
) -> Option<(String, ResolvedModel)> {
    let status = status?;
    let model_status = model.status.as_ref()?;
    let resolved = model_status
        .resolved
        .as_ref()
        .map(|r| (resolved_tag(r), ResolvedModel::from_spec_and_status(model)));
    let candidate = model_status
        .candidate
        .as_ref()
        .map(|c| (candidate_tag(c), ResolvedModel::from_candidate(model, c)));
    resolved.into_iter().chain(candidate).find(|(tag, _)| {
        let name = variant_name(variant, tag);
        status
            .variants
            .iter()
            .any(|s| s.name == name && (s.weight.unwrap_or(0) > 0 || s.replicas.unwrap_or(0) > 0))
    })
}

/// An update variant needs a valid object name and room in the variant count (`variants`:
/// the deployment's count before adding it).
pub fn fits(llmd: &str, update: &str, variants: usize) -> Result<(), String> {
    let object = names::variant_object(llmd, update);
    if object.len() > names::SERVICE_NAME_MAX {
        return Err(format!(
            "update variant {update}: object name {object} is longer than {} characters",
            names::SERVICE_NAME_MAX
        ));
    }
    if variants >= VARIANTS_MAX as usize {
        return Err(format!(
            "update variant {update}: the deployment already has {variants} variants, the most \
             a rollout can hold is {VARIANTS_MAX}"
        ));
    }
    Ok(())
}
