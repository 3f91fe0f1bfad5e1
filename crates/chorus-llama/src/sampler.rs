//! Builds a llama.cpp sampler chain from a request's [`SamplingParams`]: grammar (when the
//! output is constrained), logit bias, then the samplers in llama.cpp's common order
//! (penalties, top-k, top-p, min-p, temperature) or the request's `samplers` order, then a
//! seeded draw (or greedy at temperature 0).

use chorus_engine::{SamplerKind, SamplingParams};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

/// llama.cpp's order of the samplers chorus has.
const DEFAULT_ORDER: [SamplerKind; 5] =
    [SamplerKind::Penalties, SamplerKind::TopK, SamplerKind::TopP, SamplerKind::MinP, SamplerKind::Temperature];

/// The sampler for one sequence, with the prompt already fed to the penalties (and only to
/// them: the grammar starts at the first generated token).
pub(crate) fn build(
    params: &SamplingParams,
    grammar: Option<LlamaSampler>,
    n_vocab: i32,
    prompt: &[LlamaToken],
) -> LlamaSampler {
    let mut chain = Vec::new();
    chain.extend(grammar);
    if !params.logit_bias.is_empty() {
        let biases: Vec<LlamaLogitBias> =
            params.logit_bias.iter().map(|&(token, bias)| LlamaLogitBias::new(LlamaToken(token), bias)).collect();
        chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
    }
    let order = params.samplers.as_deref().unwrap_or(&DEFAULT_ORDER);
    let greedy = params.temperature <= 0.0;
    for kind in order {
        match kind {
            SamplerKind::Penalties => {
                let penalised =
                    params.repeat_penalty != 1.0 || params.frequency_penalty != 0.0 || params.presence_penalty != 0.0;
                if penalised {
                    let mut penalties = LlamaSampler::penalties(
                        n_vocab,
                        params.penalty_last_n,
                        params.repeat_penalty,
                        params.frequency_penalty,
                        params.presence_penalty,
                    );
                    // Penalties look back over the prompt too, as in llama-server.
                    penalties.accept_many(prompt);
                    chain.push(penalties);
                }
            }
            // At temperature 0 the draw is greedy: the truncating samplers change nothing.
            _ if greedy => {}
            SamplerKind::TopK if params.top_k > 0 => chain.push(LlamaSampler::top_k(params.top_k)),
            SamplerKind::TopP if params.top_p < 1.0 => chain.push(LlamaSampler::top_p(params.top_p, 1)),
            SamplerKind::MinP if params.min_p > 0.0 => chain.push(LlamaSampler::min_p(params.min_p, 1)),
            SamplerKind::Temperature => chain.push(LlamaSampler::temp(params.temperature)),
            SamplerKind::TopK | SamplerKind::TopP | SamplerKind::MinP => {}
        }
    }
    if greedy {
        chain.push(LlamaSampler::greedy());
    } else {
        let seed = params.seed.unwrap_or_else(random_seed);
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

/// A seed for requests that give none (llama.cpp's `LLAMA_DEFAULT_SEED` draws one too).
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() as u32
}
