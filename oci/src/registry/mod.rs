//! The Distribution API v2 registry client (being written).

pub(crate) mod challenge;
