//! Metadata filters of retrieval: shared with dokko-api, which evaluates them again on the
//! files' current metadata (see [`domain::filter`]).

pub use domain::filter::*;
