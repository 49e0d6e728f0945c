//! Variable sources for expansion.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Variables visible to expansion.
///
/// `lookup` returns `Some("")` for a variable that is set but empty and
/// `None` for one that is unset; the `:-`, `:+` and `:?` modifiers tell the
/// two apart. Names are compared exactly (BuildKit's Unix behaviour); an
/// implementation may fold case itself to get Windows semantics.
pub trait Env {
    /// The value of `name`, or `None` if it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Name/value pairs; when a name repeats, the last entry wins.
impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Name/value pairs; when a name repeats, the last entry wins.
impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// Name/value pairs; when a name repeats, the last entry wins.
impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}
