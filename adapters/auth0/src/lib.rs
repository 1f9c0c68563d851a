//! The auth0 adapter (in progress).
