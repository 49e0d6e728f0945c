//! The build cache: what a step's key is made of ([`keys`]), the local
//! index of keys to layers ([`index`]), caches shared between machines
//! (`--cache-to`/`--cache-from`, [`remote`], their flags parsed in
//! [`options`]) and the layers a shared cache
//! provided that are fetched only when something reads them ([`lazy`]).
//!
//! The solver asks the cache before it runs a step and records the layer
//! a step made under its key; nothing here runs a step.

pub(crate) mod index;
pub(crate) mod keys;
pub(crate) mod lazy;
pub(crate) mod lookup;
pub mod mounts;
pub mod options;
pub mod remote;

pub use index::{unix_millis, CacheIndex, CacheIndexEntry, CachedLayer};
pub use keys::{CacheKeyParts, CACHE_KEY_VERSION};
pub use lazy::LazyError;
pub use remote::FetchError;
