//! A string that must never reach a log or an error message by accident (access tokens, custom
//! tokens).

use std::fmt;

/// `Debug` prints `[redacted]`, there is no `Display`, and the value is only reachable through
/// [`Secret::expose`] at the place it is used.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
