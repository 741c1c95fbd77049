//! Embedding throughput on this machine: texts of about 256 and about 64 tokens per second.
//!
//! `cargo run --release -p embed --example throughput [-- <texts> [<batch size>...]]`
//! (the model is fetched into `target/models` on first use).

#![allow(clippy::print_stdout, reason = "a benchmark that prints its figures")]

use std::time::Instant;

use embed::{Model, ensure_model, test_model_dir};

/// Words to draw texts from: ordinary English, so tokens are a realistic mix of whole words and
/// pieces.
const WORDS: &[&str] = &[
    "the",
    "index",
    "retrieval",
    "document",
    "search",
    "of",
    "query",
    "results",
    "and",
    "ranking",
    "semantic",
    "keyword",
    "chunk",
    "tokenizer",
    "model",
    "vectors",
    "information",
    "library",
    "catalogue",
    "classification",
    "journal",
    "citation",
    "analysis",
    "evaluation",
    "precision",
    "recall",
    "users",
    "system",
    "in",
    "for",
    "with",
    "relevance",
    "feedback",
    "automatic",
    "indexing",
    "thesaurus",
    "bibliographic",
    "records",
    "scientific",
    "literature",
    "storage",
    "computer",
    "language",
    "natural",
    "processing",
    "a",
    "is",
    "was",
    "by",
    "on",
    "performance",
    "measured",
    "experiments",
    "collection",
    "abstracts",
    "titles",
    "terms",
];

fn texts(count: usize, tokens: usize, model: &Model) -> anyhow::Result<Vec<String>> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ tokens as u64;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut text = String::new();
        // Add words until the text is `tokens` long, [CLS] and [SEP] included.
        while model.count_tokens(&text)? < tokens {
            for _ in 0..8 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let word = WORDS[(seed >> 33) as usize % WORDS.len()];
                text.push_str(word);
                text.push(if (seed >> 20).is_multiple_of(11) { '.' } else { ' ' });
            }
        }
        out.push(text);
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let batches: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let batches = if batches.is_empty() { vec![embed::DEFAULT_BATCH] } else { batches };
    let dir = ensure_model(&test_model_dir())?;
    let started = Instant::now();
    let mut model = Model::load(&dir)?;
    println!("loaded in {:.2} s", started.elapsed().as_secs_f64());
    let v = model.embed(&["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])?;
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    println!(
        "published example: {:.4} {:.4} {:.4} (expected 0.6660 0.1046 0.1411)",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2]),
        dot(&v[1], &v[2])
    );

    for tokens in [256, 64] {
        let texts = texts(count, tokens, &model)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let lens: Vec<usize> = refs.iter().map(|t| model.count_tokens(t)).collect::<Result<_, _>>()?;
        let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        for &batch in &batches {
            model = model.with_batch_size(batch);
            model.embed(&refs[..batch.min(refs.len())])?; // warm-up
            let started = Instant::now();
            let vectors = model.embed(&refs)?;
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(vectors.len(), refs.len());
            println!(
                "{count} texts of {mean:.0} tokens, batch {batch}: {:.2} s, {:.1} texts/s",
                secs,
                count as f64 / secs
            );
        }
    }
    Ok(())
}
