//! The broker's secrets are the adapters' `Secret` (one type, on `secrecy`: zeroed on drop,
//! redacted in `Debug`, no `Display`).

pub use ssobridge_adapter_core::Secret;
