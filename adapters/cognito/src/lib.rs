//! The cognito adapter (in progress).
