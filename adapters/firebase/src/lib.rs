//! The firebase adapter (in progress).
