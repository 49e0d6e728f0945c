//! kiln-test-support: what the integration tests of several kiln crates
//! share. A dev-dependency only; it depends on no kiln crate, so every kiln
//! crate can use it without a dependency cycle.
//!
//! - [`Registry`]: a real `docker-registry` (Debian's Distribution 2.x) on
//!   127.0.0.1 with no auth, Basic auth or token auth ([`Auth`]), killed on
//!   drop; [`Registry::seed_busybox`] pushes the busybox base to it.
//! - [`FakeRegistry`]: a read-only registry that serves exactly what a test
//!   put in it, however wrong, and fails or cuts requests on command.
//! - [`GitServer`]: `git daemon` and smart HTTP (git-http-backend behind a
//!   CGI bridge) on 127.0.0.1, with a token check, served files and a
//!   port that never answers; [`git`] runs git with a fixed identity.
//! - [`FaultProxy`]: a proxy in front of a [`Registry`] that stalls,
//!   trickles, oversends, cuts, redirects or answers statuses (with
//!   `Retry-After`) on command, and counts requests.
//! - [`skopeo`], [`umoci`] (and their `_ok` forms): the independent tools
//!   tests read kiln's outputs back with. [`require_tool`] fails a test
//!   whose tool is missing: tests never skip silently.
//! - [`bases`]: the busybox layout in the shared test data and its digests.
//! - [`TarBuilder`]: real layer tars with exact headers; [`layer_tars`] and
//!   [`layer_listing`]: the layers inside an archive and their entries.
//!
//! Tests use it as `use kiln_test_support as support;`. Everything talks
//! only to loopback.
//!
//! ```
//! use kiln_test_support::TarBuilder;
//!
//! let layer = TarBuilder::new()
//!     .dir("etc", 0o755)
//!     .file("etc/hello", 0o644, b"hello\n")
//!     .whiteout("etc/old")
//!     .into_bytes();
//! let names: Vec<String> = tar::Archive::new(&layer[..])
//!     .entries()
//!     .unwrap()
//!     .map(|e| e.unwrap().path().unwrap().display().to_string())
//!     .collect();
//! assert_eq!(names, ["etc", "etc/hello", "etc/.wh.old"]);
//! ```
#![deny(missing_docs)]

pub mod bases;
mod fake;
mod fault_proxy;
mod git_server;
mod http;
mod registry;
mod tarball;
mod token;
mod tools;

pub use bases::{BUSYBOX_CONFIG, BUSYBOX_DIGEST, BUSYBOX_LAYER, BUSYBOX_LAYOUT};
pub use fake::{sha256_digest, FakeRegistry};
pub use fault_proxy::{Fault, FaultProxy, RetryAfter, Seen};
pub use git_server::{git, GitServer};
pub use http::raw_request;
pub use registry::{Auth, Registry};
pub use tarball::{layer_listing, layer_tars, TarBuilder};
pub use tools::{require_tool, skopeo, skopeo_ok, umoci, umoci_ok};
