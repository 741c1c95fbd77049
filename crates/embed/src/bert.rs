//! A BERT encoder (the forward pass only, as in inference) on candle's tensors, for the
//! checkpoints sentence-transformers publishes (`BertModel` weights without a `bert.` prefix).
//!
//! Written here rather than taken from candle-transformers, which compiles some two hundred
//! models to give one: this is the part of it this crate needs, with the query, key and value
//! projections fused into one matrix product and the attention scale folded into the weights.

use std::collections::HashMap;

use anyhow::{Context, bail, ensure};
use candle_core::{D, DType, Device, Tensor};
use rayon::prelude::*;
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

/// GELU with the exact (erf) form BERT uses, on every core: candle's runs on one thread through a
/// slower erf, and was a tenth of the forward pass.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    v.par_chunks_mut(16 * 1024).for_each(|chunk| chunk.iter_mut().for_each(|a| *a = gelu_f32(*a)));
    Tensor::from_vec(v, x.shape(), x.device())
}

/// `x·Φ(x)` = `x/2·(1 + erf(x/√2))`, erf by Abramowitz and Stegun's formula 7.1.26
/// (absolute error under 1.5e-7).
#[inline]
#[allow(clippy::excessive_precision, reason = "the coefficients as published")]
fn gelu_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * x * (1.0 + erf.copysign(x))
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
            let up = gelu(&layer.up.forward(&x1)?)?;
            let down = layer.down.forward(&up)?;
            x = layer.out_norm.forward(&(down + x1)?)?;
        }

        let x = x.reshape((batch, len, h))?;
        let summed = x.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?;
        Ok(summed.broadcast_div(&counts)?)
    }
}

#[cfg(test)]
mod tests {
    /// Against erf computed in f64 from its series (exact enough on this range).
    #[test]
    fn gelu_matches_the_exact_form() {
        fn erf64(x: f64) -> f64 {
            // Maclaurin series, converging fast for |x| ≤ 4.
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut worst = 0f64;
        for i in -800..=800 {
            let x32 = i as f32 / 100.0;
            let x = x32 as f64;
            // Beyond 6, Φ(-|x|) < 1e-9.
            let exact = if x.abs() <= 6.0 { 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2)) } else { x.max(0.0) };
            let error = (super::gelu_f32(x32) as f64 - exact).abs() / x.abs().max(1.0);
            worst = worst.max(error);
        }
        assert!(worst < 1e-6, "worst error {worst}");
    }
}
