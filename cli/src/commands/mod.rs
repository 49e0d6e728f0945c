//! One module per subcommand family.

pub mod archive;
pub mod bake;
pub mod build;
pub mod buildctl;
pub mod builds;
pub mod cache;
pub mod diff;
pub mod dive;
pub mod history;
pub mod image;
pub mod image_source;
pub mod import;
pub mod lint;
pub mod login;
pub mod outputs;
pub mod parse;
