//! The crate's integration tests, one binary: formats read in-process, detection, and the
//! isolated runner against the real `extract-child` binary.

mod detect;
mod fixtures;
mod formats;
mod isolated;
