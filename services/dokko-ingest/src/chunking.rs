//! Cutting extracted text into chunks with the text-splitter crate: sizes in characters, with
//! overlap, split at the largest semantic boundary that fits (sections, paragraphs, sentences,
//! words); Markdown-aware (headings, lists, code blocks) for Markdown.

use text_splitter::{Characters, ChunkConfig, MarkdownSplitter, TextSplitter};

pub struct Chunker {
    text: TextSplitter<Characters>,
    markdown: MarkdownSplitter<Characters>,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").finish_non_exhaustive()
    }
}

impl Chunker {
    /// Chunks of at most `size` characters, each repeating up to `overlap` characters of the
    /// one before. `overlap` must be smaller than `size`.
    pub fn new(size: usize, overlap: usize) -> anyhow::Result<Self> {
        let config = || ChunkConfig::new(size).with_overlap(overlap);
        Ok(Self { text: TextSplitter::new(config()?), markdown: MarkdownSplitter::new(config()?) })
    }

    /// The chunks of `text`, in order; blank text has none.
    pub fn chunks(&self, text: &str, markdown: bool) -> Vec<String> {
        if markdown {
            self.markdown.chunks(text).map(str::to_owned).collect()
        } else {
            self.text.chunks(text).map(str::to_owned).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_size_and_overlap() {
        let chunker = Chunker::new(100, 20).expect("valid sizes");
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let chunks = chunker.chunks(&text, false);
        assert!(chunks.len() >= 9, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.chars().count() <= 100));
        // Consecutive chunks share text (the overlap).
        let tail: String = chunks[0].chars().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(chunks[1].contains(tail.trim()), "{:?} / {:?}", chunks[0], chunks[1]);
        assert!(chunker.chunks("   \n ", false).is_empty());
    }

    #[test]
    fn markdown_splits_at_headings() {
        let chunker = Chunker::new(60, 0).expect("valid sizes");
        let text = "# Alpha\n\nFirst section body text.\n\n# Beta\n\nSecond section body text.\n";
        let chunks = chunker.chunks(text, true);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert!(chunks[0].starts_with("# Alpha") && chunks[1].starts_with("# Beta"), "{chunks:?}");
    }

    #[test]
    fn overlap_must_be_smaller_than_size() {
        assert!(Chunker::new(10, 10).is_err());
    }
}
