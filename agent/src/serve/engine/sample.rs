//! Picking the next token. llama.cpp's `llama_sampler_sample` copies the whole vocabulary into
//! a fresh candidate array for every token (262,144 entries, 3 MiB, for Gemma 3) before its
//! chain cuts it down to `top_k`. Without penalties (which need every logit) the same answer
//! comes from the logits directly: greedy is their first maximum, and top-k is one pass that
//! keeps the k best, after which llama.cpp's remaining samplers (top-p, min-p, temperature,
//! the seeded draw) run on those k candidates exactly as they would after its own top-k.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use super::SamplingParams;

/// Candidates checked against the grammar after it refused the first pick, before the whole
/// vocabulary is: the next tokens the model wants are nearly always among its best few hundred,
/// and checking 256 instead of 262,144 (Gemma 3) is what makes a schema cheap.
const MASK_WINDOW: usize = 256;

/// How one generation picks its tokens.
pub struct Sampler {
    kind: Kind,
    /// Constrained decoding: llama.cpp's grammar sampler. As in llama.cpp's `common_sampler`,
    /// the unconstrained pick is tried against the grammar first (one token), and only when
    /// the grammar refuses it is the whole vocabulary masked and the pick made again.
    grammar: Option<LlamaSampler>,
    /// Tokens never picked (masked like the grammar's refusals).
    banned: Vec<LlamaToken>,
}

enum Kind {
    /// Temperature 0, no penalties: the first most likely token.
    Greedy,
    /// The k best logits, then the rest of the chain on them.
    TopK {
        k: usize,
        rest: LlamaSampler,
        best: Vec<(f32, i32)>,
    },
    /// llama.cpp's chain over the whole vocabulary.
    Chain(LlamaSampler),
}

impl Sampler {
    /// The sampler for `params`: straight from the logits where that gives llama.cpp's
    /// answer, else its chain.
    pub fn new(params: &SamplingParams, n_vocab: i32) -> Self {
        let k = usize::try_from(params.top_k).unwrap_or(0);
        let vocab = usize::try_from(n_vocab).unwrap_or(0);
        let kind = match (params.plain_logits(), params.temperature <= 0.0) {
            (true, true) => Kind::Greedy,
            (true, false) if k > 0 && k < vocab => Kind::TopK {
                k,
                rest: LlamaSampler::chain_simple(params.after_top_k()),
                best: Vec::with_capacity(k + 1),
            },
            _ => Kind::Chain(params.sampler(n_vocab)),
        };
        Self {
            kind,
            grammar: None,
            banned: Vec::new(),
        }
    }

    /// llama.cpp's own chain for `params`, whatever they are (the reference the tests compare
    /// with).
    pub fn llama_chain(params: &SamplingParams, n_vocab: i32) -> Self {
        Self {
            kind: Kind::Chain(params.sampler(n_vocab)),
            grammar: None,
            banned: Vec::new(),
        }
    }

    /// llama.cpp's chain with `grammar` first: the reference for constrained greedy decoding
    /// (sampled decoding draws again after a refusal, as llama.cpp's `common_sampler` does).
    pub fn llama_chain_with_grammar(
        params: &SamplingParams,
        n_vocab: i32,
        grammar: LlamaSampler,
    ) -> Self {
        Self {
            kind: Kind::Chain(LlamaSampler::chain_simple([
                grammar,
                params.sampler(n_vocab),
            ])),
            grammar: None,
            banned: Vec::new(),
        }
    }

    /// Only tokens `grammar` (a llama.cpp grammar sampler) allows will be picked.
    pub fn constrained(mut self, grammar: LlamaSampler) -> Self {
        self.grammar = Some(grammar);
        self
    }

    /// These tokens are never picked (llama-server's `ignore_eos` bans end-of-generation).
    pub fn banning(mut self, banned: Vec<LlamaToken>) -> Self {
        self.banned = banned;
        self
    }

    /// Picks the token for output `idx` of the last decode (and lets the chain see it).
    /// `None`: the grammar allows no token at all (a schema no value satisfies, such as
    /// `minimum` above `maximum`); the generation must end, since any pick would break it.
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Option<LlamaToken> {
        if let Kind::Chain(chain) = &mut self.kind
            && self.grammar.is_none()
            && self.banned.is_empty()
        {
            return Some(chain.sample(ctx, idx));
        }
        let logits = ctx.get_logits_ith(idx);
        let mut token = self.kind.pick(logits);
        let refused = self.banned.contains(&token)
            || self
                .grammar
                .as_mut()
                .is_some_and(|g| !allows(g, token, logits));
        if refused {
            token = match self.pick_from_the_best(logits) {
                Some(token) => token,
                None => {
                    let mut all = every_token(logits);
                    self.mask(&mut all);
                    if !all.data.iter().any(|d| d.logit().is_finite()) {
                        return None;
                    }
                    self.kind.pick_among(all)
                }
            };
        }
        if let Some(grammar) = &mut self.grammar
            && grammar.try_accept(token).is_err()
        {
            return None;
        }
        self.kind.accept(token);
        Some(token)
    }

    /// Sets the logits of banned tokens and of tokens the grammar refuses to -inf.
    fn mask(&mut self, candidates: &mut LlamaTokenDataArray) {
        for d in &mut candidates.data {
            if self.banned.contains(&d.id()) {
                d.set_logit(f32::NEG_INFINITY);
            }
        }
        if let Some(grammar) = &mut self.grammar {
            grammar.apply(candidates);
        }
    }

    /// Greedy and top-k after a refusal, without masking the whole vocabulary: if the
    /// `MASK_WINDOW` best logits hold at least k allowed tokens, those are exactly the k best
    /// allowed ones (any other allowed token has a lower logit), which is what masking
    /// everything and then taking the top k gives. `None`: too few there, mask everything.
    fn pick_from_the_best(&mut self, logits: &[f32]) -> Option<LlamaToken> {
        let k = match &self.kind {
            Kind::Greedy => 1,
            Kind::TopK { k, .. } => *k,
            Kind::Chain(_) => return None,
        };
        let mut window = Vec::with_capacity(MASK_WINDOW.max(k) + 1);
        top_k(logits, MASK_WINDOW.max(k), &mut window);
        let data = window
            .iter()
            .map(|&(logit, id)| LlamaTokenData::new(LlamaToken(id), logit, 0.0))
            .collect();
        let mut best = LlamaTokenDataArray::new(data, true);
        self.mask(&mut best);
        let allowed: Vec<(f32, i32)> = best
            .data
            .iter()
            .filter(|d| d.logit().is_finite())
            .take(k)
            .map(|d| (d.logit(), d.id().0))
            .collect();
        if allowed.len() < k {
            return None;
        }
        Some(match &mut self.kind {
            Kind::TopK { rest, .. } => {
                let data = allowed
                    .iter()
                    .map(|&(logit, id)| LlamaTokenData::new(LlamaToken(id), logit, 0.0))
                    .collect();
                choose(rest, LlamaTokenDataArray::new(data, true), allowed[0].1)
            }
            _ => LlamaToken(allowed[0].1),
        })
    }
}

impl Kind {
    /// The token these settings choose from `logits`; no sampler state changes except the
    /// draw's random state.
    fn pick(&mut self, logits: &[f32]) -> LlamaToken {
        match self {
            Kind::Greedy => LlamaToken(first_max(logits)),
            Kind::TopK { k, rest, best } => {
                top_k(logits, *k, best);
                // A mask leaves -inf behind; those are no candidates.
                best.retain(|(logit, _)| logit.is_finite());
                let fallback = best.first().map_or(first_max(logits), |b| b.1);
                let data = best
                    .iter()
                    .map(|&(logit, id)| LlamaTokenData::new(LlamaToken(id), logit, 0.0))
                    .collect();
                choose(rest, LlamaTokenDataArray::new(data, true), fallback)
            }
            Kind::Chain(chain) => choose(chain, every_token(logits), 0),
        }
    }

    /// [`Kind::pick`] over the whole vocabulary after a mask set some logits to -inf.
    fn pick_among(&mut self, all: LlamaTokenDataArray) -> LlamaToken {
        if let Kind::Chain(chain) = self {
            return choose(chain, all, 0);
        }
        let masked: Vec<f32> = all.data.iter().map(|d| d.logit()).collect();
        self.pick(&masked)
    }

    /// Lets the chain's stateful samplers (penalties) see the chosen token.
    fn accept(&mut self, token: LlamaToken) {
        match self {
            Kind::Greedy => {}
            Kind::TopK { rest, .. } => rest.accept(token),
            Kind::Chain(chain) => chain.accept(token),
        }
    }
}

/// What `chain` selects among `candidates` (`fallback` when it selects nothing).
fn choose(
    chain: &mut LlamaSampler,
    mut candidates: LlamaTokenDataArray,
    fallback: i32,
) -> LlamaToken {
    chain.apply(&mut candidates);
    candidates.selected_token().unwrap_or(LlamaToken(fallback))
}

/// The whole vocabulary as candidates, in id order.
fn every_token(logits: &[f32]) -> LlamaTokenDataArray {
    let data = (0_i32..)
        .zip(logits)
        .map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id), logit, 0.0))
        .collect();
    LlamaTokenDataArray::new(data, false)
}

/// Whether `grammar` lets `token` come next (one token through the grammar, not the
/// vocabulary).
fn allows(grammar: &mut LlamaSampler, token: LlamaToken, logits: &[f32]) -> bool {
    let logit = usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .copied()
        .unwrap_or(0.0);
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, logit, 0.0)], false);
    grammar.apply(&mut one);
    one.data[0].logit().is_finite()
}

/// Index of the first largest logit (llama.cpp's greedy sampler keeps the first on ties).
fn first_max(logits: &[f32]) -> i32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    i32::try_from(best).unwrap_or(0)
}

/// The `k` largest logits with their token ids, largest first (on ties, the lower id first).
/// One pass: a logit below the current k-th is dismissed with one comparison.
pub(super) fn top_k(logits: &[f32], k: usize, best: &mut Vec<(f32, i32)>) {
    best.clear();
    if k == 0 {
        return;
    }
    let mut floor = f32::NEG_INFINITY;
    for (id, &logit) in (0_i32..).zip(logits) {
        if best.len() == k && logit <= floor || logit.is_nan() {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= logit);
        best.insert(at, (logit, id));
        best.truncate(k);
        if best.len() == k {
            floor = best[k - 1].0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_k_largest_in_order_lower_id_first_on_ties() {
        let logits = [0.5, 3.0, -1.0, 3.0, 2.0, f32::NAN, 2.5, 0.0];
        let mut best = Vec::new();
        top_k(&logits, 3, &mut best);
        assert_eq!(best, vec![(3.0, 1), (3.0, 3), (2.5, 6)]);
        top_k(&logits, 1, &mut best);
        assert_eq!(best, vec![(3.0, 1)]);
        top_k(&logits, 20, &mut best);
        assert_eq!(best.len(), 7, "every number, NaN left out");
        top_k(&logits, 0, &mut best);
        assert!(best.is_empty(), "k = 0 keeps none");
        top_k(&logits, 20, &mut best);
        assert_eq!(best.len(), 7, "every number, NaN left out");
        assert!(best.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn first_max_is_the_first_of_equal_maxima() {
        assert_eq!(first_max(&[1.0, 4.0, 2.0, 4.0]), 1);
        assert_eq!(first_max(&[-3.0]), 0);
    }
}
