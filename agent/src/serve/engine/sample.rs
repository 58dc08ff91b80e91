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

/// How one generation picks its tokens.
pub struct Sampler(Kind);

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
        Self(match (params.plain_logits(), params.temperature <= 0.0) {
            (true, true) => Kind::Greedy,
            (true, false) if k > 0 && k < vocab => Kind::TopK {
                k,
                rest: LlamaSampler::chain_simple(params.after_top_k()),
                best: Vec::with_capacity(k + 1),
            },
            _ => Kind::Chain(params.sampler(n_vocab)),
        })
    }

    /// llama.cpp's own chain for `params`, whatever they are (the reference the tests compare
    /// with).
    pub fn llama_chain(params: &SamplingParams, n_vocab: i32) -> Self {
        Self(Kind::Chain(params.sampler(n_vocab)))
    }

    /// Picks the token for output `idx` of the last decode (and lets the chain see it).
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        match &mut self.0 {
            Kind::Chain(chain) => chain.sample(ctx, idx),
            Kind::Greedy => LlamaToken(first_max(ctx.get_logits_ith(idx))),
            Kind::TopK { k, rest, best } => {
                top_k(ctx.get_logits_ith(idx), *k, best);
                let data = best
                    .iter()
                    .map(|&(logit, id)| LlamaTokenData::new(LlamaToken(id), logit, 0.0))
                    .collect();
                let mut candidates = LlamaTokenDataArray::new(data, true);
                rest.apply(&mut candidates);
                let token = candidates
                    .selected_token()
                    .unwrap_or(LlamaToken(best.first().map_or(0, |b| b.1)));
                rest.accept(token);
                token
            }
        }
    }
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
fn top_k(logits: &[f32], k: usize, best: &mut Vec<(f32, i32)>) {
    best.clear();
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
        assert!(best.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn first_max_is_the_first_of_equal_maxima() {
        assert_eq!(first_max(&[1.0, 4.0, 2.0, 4.0]), 1);
        assert_eq!(first_max(&[-3.0]), 0);
    }
}
