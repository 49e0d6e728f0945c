//! Typed instructions: the second step of parsing, after [`crate::raw`].

mod build;
mod duration;
mod expand;
mod flags;
mod mount;
mod types;

pub(crate) use build::build_command;
pub use mount::{MountType, RunMount, Sharing};
pub use types::*;
