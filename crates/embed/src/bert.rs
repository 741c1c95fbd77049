//! A BERT encoder (the forward pass only, as in inference) on candle's tensors, for the
//! checkpoints sentence-transformers publishes (`BertModel` weights without a `bert.` prefix).
//!
//! Written here rather than taken from candle-transformers, which compiles some two hundred
//! models to give one: this is the part of it this crate needs, with the query, key and value
//! projections fused into one matrix product and the attention scale folded into the weights.

use std::collections::HashMap;

use anyhow::{Context, bail, ensure};
use candle_core::{D, DType, Device, Tensor};
use serde::Deserialize;

/// The fields of a Hugging Face `config.json` that the forward pass reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub model_type: Option<String>,
}

struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn take(&mut self, name: &str, shape: &[usize]) -> anyhow::Result<Tensor> {
        let t = self
            .0
            .remove(name)
            .or_else(|| self.0.remove(&format!("bert.{name}")))
            .with_context(|| format!("the weights have no tensor {name}"))?;
        ensure!(t.dims() == shape, "tensor {name} has shape {:?}, expected {shape:?}", t.dims());
        Ok(t.to_dtype(DType::F32)?)
    }
}

/// `x · wᵀ + b` over the last dimension, with `wᵀ` stored as `(in, out)`.
struct Linear {
    wt: Tensor,
    b: Tensor,
}

impl Linear {
    fn new(w: Tensor, b: Tensor) -> anyhow::Result<Self> {
        Ok(Self { wt: w.t()?.contiguous()?, b })
    }

    fn load(ws: &mut Weights, prefix: &str, out: usize, inp: usize) -> anyhow::Result<Self> {
        let w = ws.take(&format!("{prefix}.weight"), &[out, inp])?;
        let b = ws.take(&format!("{prefix}.bias"), &[out])?;
        Self::new(w, b)
    }

    /// `x` is `(rows, in)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.wt)?.broadcast_add(&self.b)
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(ws: &mut Weights, prefix: &str, dim: usize, eps: f64) -> anyhow::Result<Self> {
        Ok(Self {
            w: ws.take(&format!("{prefix}.weight"), &[dim])?,
            b: ws.take(&format!("{prefix}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    max_positions: usize,
}

impl Bert {
    /// Builds the encoder from a safetensors file's bytes (read into memory: no memory map).
    pub fn load(cfg: &Config, safetensors: &[u8]) -> anyhow::Result<Self> {
        if let Some(t) = &cfg.model_type {
            ensure!(t == "bert", "model_type is {t}, not bert");
        }
        if cfg.hidden_act != "gelu" {
            bail!("hidden_act {} is not supported (gelu only)", cfg.hidden_act);
        }
        let h = cfg.hidden_size;
        ensure!(
            cfg.num_attention_heads > 0 && h.is_multiple_of(cfg.num_attention_heads),
            "hidden_size {h} is not a multiple of num_attention_heads {}",
            cfg.num_attention_heads
        );
        let head_dim = h / cfg.num_attention_heads;
        let device = Device::Cpu;
        let mut ws =
            Weights(candle_core::safetensors::load_buffer(safetensors, &device).context("reading model.safetensors")?);
        let word = ws.take("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
        let position = ws.take("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?;
        let token_type0 = ws.take("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?.get(0)?;
        let emb_norm = LayerNorm::load(&mut ws, "embeddings.LayerNorm", h, cfg.layer_norm_eps)?;
        // Scores are q·k/√d: scaling the query's weights and bias once does the same.
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut part = |name: &str| -> anyhow::Result<(Tensor, Tensor)> {
                Ok((
                    ws.take(&format!("{p}.attention.self.{name}.weight"), &[h, h])?,
                    ws.take(&format!("{p}.attention.self.{name}.bias"), &[h])?,
                ))
            };
            let (qw, qb) = part("query")?;
            let (kw, kb) = part("key")?;
            let (vw, vb) = part("value")?;
            let qkv =
                Linear::new(Tensor::cat(&[(qw * scale)?, kw, vw], 0)?, Tensor::cat(&[(qb * scale)?, kb, vb], 0)?)?;
            layers.push(Layer {
                qkv,
                attn_out: Linear::load(&mut ws, &format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: LayerNorm::load(&mut ws, &format!("{p}.attention.output.LayerNorm"), h, cfg.layer_norm_eps)?,
                up: Linear::load(&mut ws, &format!("{p}.intermediate.dense"), cfg.intermediate_size, h)?,
                down: Linear::load(&mut ws, &format!("{p}.output.dense"), h, cfg.intermediate_size)?,
                out_norm: LayerNorm::load(&mut ws, &format!("{p}.output.LayerNorm"), h, cfg.layer_norm_eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type0,
            emb_norm,
            layers,
            heads: cfg.num_attention_heads,
            head_dim,
            hidden: h,
            max_positions: cfg.max_position_embeddings,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled (over the real tokens) last hidden states, `(batch, hidden)`.
    ///
    /// `ids` is `batch × len` token ids, row-major, padded; `lens[i]` is row i's real length
    /// (its tokens come first). Padded positions are masked out of attention and pooling.
    pub fn pooled(&self, ids: &[u32], lens: &[usize], len: usize) -> anyhow::Result<Tensor> {
        let batch = lens.len();
        ensure!(ids.len() == batch * len, "ids are not batch × len");
        ensure!(len <= self.max_positions, "{len} tokens exceed {}", self.max_positions);
        let device = Device::Cpu;
        let rows = batch * len;
        let (h, heads, hd) = (self.hidden, self.heads, self.head_dim);

        let ids_t = Tensor::from_slice(ids, rows, &device)?;
        let mut x = self
            .word
            .index_select(&ids_t, 0)?
            .reshape((batch, len, h))?
            .broadcast_add(&self.position.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type0)?;
        x = self.emb_norm.forward(&x)?.reshape((rows, h))?;

        let mut mask = Vec::with_capacity(rows);
        for &l in lens {
            ensure!(l >= 1 && l <= len, "a row's length {l} is not in 1..={len}");
            mask.extend((0..len).map(|j| if j < l { 1f32 } else { 0f32 }));
        }
        let mask = Tensor::from_vec(mask, (batch, len), &device)?;
        // 0 where a key is a real token, a large negative number where it is padding.
        let bias = ((&mask - 1.0)? * 1e9)?.reshape((batch, 1, 1, len))?;
        let padded = lens.iter().any(|&l| l < len);

        for layer in &self.layers {
            let qkv =
                layer.qkv.forward(&x)?.reshape((batch, len, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let mut scores = q.matmul(&k.t()?)?;
            if padded {
                scores = scores.broadcast_add(&bias)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((rows, h))?;
            let a = layer.attn_out.forward(&ctx)?;
            let x1 = layer.attn_norm.forward(&(a + &x)?)?;
            let up = layer.up.forward(&x1)?.gelu_erf()?;
            let down = layer.down.forward(&up)?;
            x = layer.out_norm.forward(&(down + x1)?)?;
        }

        let x = x.reshape((batch, len, h))?;
        let summed = x.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?;
        Ok(summed.broadcast_div(&counts)?)
    }
}
