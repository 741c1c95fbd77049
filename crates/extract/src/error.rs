//! Why a file yields no text. `Display` is the reason stored with a failed file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Format;

/// Why a file yields no text.
///
/// The `Display` text is short, in plain words, and safe to show to the file's owner: it names
/// the problem, never a path or a stack trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractError {
    /// Not a format this crate reads (an image, an archive, a legacy Office file, binary data).
    #[error("unsupported file type: {kind}")]
    Unsupported {
        /// What the file looks like, e.g. `"PNG image"` or `"binary data"`.
        kind: String,
    },
    /// The format was recognised but the content is damaged, truncated or encrypted.
    #[error("cannot read this {format}: {reason}")]
    Corrupt {
        /// The format the bytes were read as.
        format: Format,
        /// What went wrong, from the parser.
        reason: String,
    },
    /// A size bound of [`Limits`](crate::Limits) was exceeded.
    #[error("{what} is larger than the limit of {}", human_bytes(*.limit))]
    TooLarge {
        /// Which size.
        what: Oversize,
        /// The bound, in bytes.
        limit: u64,
    },
    /// The child process was still running at the deadline (or used up its CPU time) and was
    /// killed.
    #[error("extraction took longer than {}", human_duration(*.0))]
    Timeout(Duration),
    /// The child process ran out of its address-space limit and was killed.
    #[error("extraction needed more than {} of memory", human_bytes(*.limit))]
    OutOfMemory {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The parser panicked or the child process died another way (signal, unexpected exit, a
    /// response that does not follow the protocol).
    #[error("the extractor crashed: {0}")]
    Crashed(String),
    /// The child process could not be started or talked to.
    #[error("could not run the extractor: {0}")]
    Io(String),
}

impl ExtractError {
    pub(crate) fn corrupt(format: Format, reason: impl fmt::Display) -> Self {
        ExtractError::Corrupt { format, reason: reason.to_string() }
    }

    /// A short stable identifier of the variant (`"corrupt"`, `"timeout"` …), for metrics and
    /// for grouping failures.
    pub fn kind(&self) -> &'static str {
        match self {
            ExtractError::Unsupported { .. } => "unsupported",
            ExtractError::Corrupt { .. } => "corrupt",
            ExtractError::TooLarge { .. } => "too_large",
            ExtractError::Timeout(_) => "timeout",
            ExtractError::OutOfMemory { .. } => "out_of_memory",
            ExtractError::Crashed(_) => "crashed",
            ExtractError::Io(_) => "io",
        }
    }
}

/// Which size bound of [`Limits`](crate::Limits) a file exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// The file itself ([`Limits::max_input_bytes`](crate::Limits::max_input_bytes)).
    Input,
    /// The extracted text ([`Limits::max_output_bytes`](crate::Limits::max_output_bytes)).
    Output,
    /// What a compressed container inflates to
    /// ([`Limits::max_decompressed_bytes`](crate::Limits::max_decompressed_bytes)).
    Decompressed,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Oversize::Input => "the file",
            Oversize::Output => "the extracted text",
            Oversize::Decompressed => "the decompressed content",
        })
    }
}

/// `1536` → `"1.5 KiB"`, `64 << 20` → `"64 MiB"`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `30 s`, `1.5 s`, `200 ms`.
fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_reasons() {
        let too_large = ExtractError::TooLarge { what: Oversize::Input, limit: 64 << 20 };
        assert_eq!(too_large.to_string(), "the file is larger than the limit of 64 MiB");
        assert_eq!(ExtractError::Timeout(Duration::from_millis(1500)).to_string(), "extraction took longer than 1.5 s");
        assert_eq!(
            ExtractError::OutOfMemory { limit: 1536 }.to_string(),
            "extraction needed more than 1.5 KiB of memory"
        );
        assert_eq!(ExtractError::corrupt(Format::Pdf, "no trailer").to_string(), "cannot read this PDF: no trailer");
        assert_eq!(human_bytes(10), "10 bytes");
    }
}
