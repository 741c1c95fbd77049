//! Vector search at scale: the latency of dokko-ingest's quantised vector search and its recall
//! against exact f32 search.
//!
//! ```sh
//! cargo run --release -p dokko-ingest --example vector_search -- [chunks] [queries]
//! ```
//! (default 1,000,000 chunks, 300 queries).
//!
//! A million real embeddings cannot be computed here (the embedded model makes some 30 a second
//! on 2 cores), so the vectors are synthetic, shaped like sentence embeddings: 384 dimensions, a
//! shared direction every vector leans towards (real embeddings of unrelated texts still have a
//! cosine of 0.1 to 0.2), 5,000 topics the chunks gather around, and noise; 30 chunks per file.
//! Queries are drawn the same way (a topic, noise). Recall@k is the share of the exact top k (f32
//! cosine over every vector) that the quantised search returns.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use dokko_ingest::index::OrdSet;
use dokko_ingest::quantized::QuantizedVectors;

const DIMS: usize = 384;
const TOPICS: usize = 5000;
const CHUNKS_PER_FILE: usize = 30;

/// xorshift64* with Box-Muller normals: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn vector(&mut self, scale: f32) -> Vec<f32> {
        (0..DIMS).map(|_| self.normal() * scale).collect()
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// A chunk (or query) near `topic`: the shared direction, the topic, noise.
fn sample(rng: &mut Rng, shared: &[f32], topic: &[f32], noise: f32) -> Vec<f32> {
    let jitter = rng.vector(noise);
    normalise(shared.iter().zip(topic).zip(jitter).map(|((s, t), j)| s + t + j).collect())
}

/// This process's CPU time so far, in seconds (user + system, from /proc; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let chunks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let shared: Vec<f32> = normalise(rng.vector(1.0)).into_iter().map(|x| x * 0.45).collect();
    let topics: Vec<Vec<f32>> =
        (0..TOPICS).map(|_| normalise(rng.vector(1.0)).into_iter().map(|x| x * 0.8).collect()).collect();
    let noise = 0.9 / (DIMS as f32).sqrt();

    let started = Instant::now();
    let mut store = QuantizedVectors::new();
    // The exact f32 vectors, kept here only to measure recall.
    let mut exact: Vec<f32> = Vec::with_capacity(chunks * DIMS);
    for i in 0..chunks {
        let topic = &topics[(rng.uniform() * TOPICS as f64) as usize % TOPICS];
        let v = sample(&mut rng, &shared, topic, noise);
        store.insert(((i / CHUNKS_PER_FILE) as i64, (i % CHUNKS_PER_FILE) as i32), &v);
        exact.extend_from_slice(&v);
    }
    let files = chunks.div_ceil(CHUNKS_PER_FILE);
    println!(
        "{chunks} chunks ({files} files, {DIMS} dimensions) quantised in {:.1} s; held: {} MB (f32 would be {} MB)",
        started.elapsed().as_secs_f64(),
        chunks * (DIMS + DIMS / 8 + 4 + 8 + 4) / 1_000_000,
        chunks * DIMS * 4 / 1_000_000
    );

    let all = OrdSet::new(0..files as i64);
    let tenth = OrdSet::new((0..files as i64).filter(|f| f % 10 == 3));
    let query_vectors: Vec<Vec<f32>> = (0..queries)
        .map(|_| {
            let topic = &topics[(rng.uniform() * TOPICS as f64) as usize % TOPICS];
            sample(&mut rng, &shared, topic, noise * 1.2)
        })
        .collect();

    for (label, allowed, limit) in
        [("all files, top 10", &all, 10), ("all files, top 50", &all, 50), ("a tenth of the files, top 10", &tenth, 10)]
    {
        let mut times = Vec::with_capacity(queries);
        let mut answers = Vec::with_capacity(queries);
        let cpu = cpu_seconds();
        for query in &query_vectors {
            let t = Instant::now();
            let found = store.nearest(query, limit, allowed);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            answers.push(found);
        }
        let cpu_ms = (cpu_seconds() - cpu) * 1000.0 / queries as f64;
        let mut found_total = 0usize;
        let mut expected_total = 0usize;
        for (q, (query, found)) in query_vectors.iter().zip(&answers).enumerate() {
            // Recall on a third of the queries (exact search costs a full f32 scan).
            if q % 3 == 0 {
                let mut scored: Vec<(f32, usize)> = exact
                    .chunks_exact(DIMS)
                    .enumerate()
                    .filter(|(i, _)| allowed.contains((i / CHUNKS_PER_FILE) as u64))
                    .map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), i))
                    .collect();
                let k = limit.min(scored.len());
                scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                let truth: std::collections::HashSet<usize> = scored[..k].iter().map(|(_, i)| *i).collect();
                let got: std::collections::HashSet<usize> = found
                    .iter()
                    .map(|((file, position), _)| *file as usize * CHUNKS_PER_FILE + *position as usize)
                    .collect();
                found_total += truth.intersection(&got).count();
                expected_total += k;
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label:>30}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, CPU {cpu_ms:.1} ms/query; recall@{limit} vs exact f32 {:.3} ({queries} queries)",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
            found_total as f64 / expected_total.max(1) as f64
        );
    }
}
