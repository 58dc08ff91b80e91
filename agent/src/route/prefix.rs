//! The prompt prefix of a request, as the router can see it without the model: the request's
//! fields in the order a chat template puts them (model or preset, system text, tools, then
//! the messages or the prompt), cut into fixed blocks whose hashes chain (block `i`'s hash
//! covers blocks `0..=i`). Two requests share a leading run of block hashes exactly when they
//! share that much leading text, which is what a replica's prompt cache can reuse: a preset's
//! system prompt, or a conversation's earlier turns (turn `n + 1` resends turn `n`'s messages
//! and adds to them).
//!
//! [`PrefixIndex`] remembers which replica last received each block, so the next request that
//! shares the blocks can go there.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use serde_json::Value;

/// Bytes of prompt text per block (about 64 tokens of English).
pub const BLOCK_BYTES: usize = 256;
/// Blocks looked at per request: prompts beyond 128 KiB share no more than that.
pub const MAX_BLOCKS: usize = 512;
/// Blocks remembered per variant (with the replica that got them), least recently used
/// dropped first: about 8 MiB, 16 Mi characters of distinct prompts.
pub const INDEX_BLOCKS: usize = 1 << 16;

/// Fields that lead a prompt, in template order; the messages or prompt come last.
const LEADING_FIELDS: [&str; 4] = ["model", "system", "instructions", "tools"];
/// Fields holding the conversation or the prompt (OpenAI and Ollama chat, Anthropic
/// Messages, Responses, completions).
const BODY_FIELDS: [&str; 3] = ["messages", "input", "prompt"];

/// The chained block hashes of a request body (JSON); none for a body that is not a JSON
/// object (the request is then placed by load alone).
pub fn blocks(body: &[u8]) -> Vec<u64> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let limit = MAX_BLOCKS * BLOCK_BYTES;
    let mut text = Vec::with_capacity(body.len().min(limit));
    for name in LEADING_FIELDS {
        if let Some(value) = fields.get(name) {
            append(&mut text, value);
        }
        text.push(0x1f);
    }
    if let Some(value) = BODY_FIELDS.iter().find_map(|name| fields.get(*name)) {
        match value {
            // Each message on its own, so that the text of turn n is a prefix of turn n + 1's.
            Value::Array(items) => {
                for item in items {
                    if text.len() >= limit {
                        break;
                    }
                    append(&mut text, item);
                    text.push(0x1e);
                }
            }
            other => append(&mut text, other),
        }
    }
    chain(&text)
}

fn append(text: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => text.extend_from_slice(s.as_bytes()),
        // Serialising a parsed JSON value cannot fail.
        other => text.extend(serde_json::to_vec(other).unwrap_or_default()),
    }
}

/// The hashes of the whole blocks of `text`, each covering every block before it.
fn chain(text: &[u8]) -> Vec<u64> {
    let mut hasher = DefaultHasher::new();
    text.chunks_exact(BLOCK_BYTES)
        .take(MAX_BLOCKS)
        .map(|block| {
            block.hash(&mut hasher);
            hasher.finish()
        })
        .collect()
}

/// Which replica (by base URL) last received each block of a variant.
#[derive(Debug)]
pub struct PrefixIndex {
    blocks: Mutex<LruCache<u64, Arc<str>>>,
}

impl Default for PrefixIndex {
    fn default() -> Self {
        PrefixIndex::with_capacity(INDEX_BLOCKS)
    }
}

impl PrefixIndex {
    /// An index remembering up to `capacity` blocks.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        PrefixIndex {
            blocks: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The replica that received the longest leading run of `blocks` among those `known`
    /// admits, with the length of that run; `None` when no leading block is remembered there.
    pub fn longest(
        &self,
        blocks: &[u64],
        known: impl Fn(&str) -> bool,
    ) -> Option<(Arc<str>, usize)> {
        let mut index = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        // The hashes chain, so the first block that is missing ends every shared run.
        for (i, block) in blocks.iter().enumerate() {
            let Some(replica) = index.get(block) else {
                break;
            };
            if known(replica) {
                found = Some((replica.clone(), i + 1));
            }
        }
        found
    }

    /// Remembers that `replica` received `blocks`.
    pub fn record(&self, blocks: &[u64], replica: &Arc<str>) {
        let mut index = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for block in blocks {
            index.put(*block, replica.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chat(messages: &[(&str, &str)]) -> Vec<u8> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"model": "m", "messages": messages})).unwrap()
    }

    #[test]
    fn a_later_turn_shares_every_whole_block_of_the_earlier_one() {
        let long = "You are a careful legal consultant. ".repeat(40);
        let first = blocks(&chat(&[("system", &long), ("user", "What is a lease?")]));
        let second = blocks(&chat(&[
            ("system", &long),
            ("user", "What is a lease?"),
            ("assistant", "A contract."),
            ("user", "And a sublease?"),
        ]));
        assert!(first.len() >= 5, "{} blocks", first.len());
        assert!(second.len() > first.len());
        assert_eq!(first[..], second[..first.len()]);
    }

    #[test]
    fn another_model_or_system_prompt_shares_nothing() {
        let long = "x".repeat(2 * BLOCK_BYTES);
        let base = blocks(&chat(&[("system", &long)]));
        let mut other_model: Value = serde_json::from_slice(&chat(&[("system", &long)])).unwrap();
        other_model["model"] = "n".into();
        let other_model = blocks(&serde_json::to_vec(&other_model).unwrap());
        let other_prompt = blocks(&chat(&[("system", &format!("y{long}"))]));
        assert_ne!(base[0], other_model[0]);
        assert_ne!(base[0], other_prompt[0]);
    }

    #[test]
    fn short_or_non_json_bodies_have_no_blocks() {
        assert!(blocks(&chat(&[("user", "hi")])).is_empty());
        assert!(blocks(b"not json").is_empty());
        assert!(blocks(b"[1, 2]").is_empty());
    }

    #[test]
    fn the_longest_run_wins_and_unknown_replicas_are_skipped() {
        let index = PrefixIndex::with_capacity(64);
        let (a, b): (Arc<str>, Arc<str>) = ("http://a".into(), "http://b".into());
        index.record(&[1, 2], &a);
        index.record(&[1, 2, 3], &b);
        assert_eq!(index.longest(&[1, 2, 3, 4], |_| true), Some((b.clone(), 3)));
        index.record(&[1], &a);
        assert_eq!(index.longest(&[1, 2, 3], |_| true), Some((b.clone(), 3)));
        assert_eq!(index.longest(&[1, 2, 3], |r| r == "http://a"), Some((a, 1)));
        assert_eq!(index.longest(&[9, 1], |_| true), None);
    }

    #[test]
    fn the_index_forgets_the_least_recently_used_blocks() {
        let index = PrefixIndex::with_capacity(2);
        let a: Arc<str> = "http://a".into();
        index.record(&[1, 2, 3], &a);
        assert_eq!(index.longest(&[1], |_| true), None);
        assert_eq!(index.longest(&[2, 3], |_| true), Some((a, 2)));
    }
}
