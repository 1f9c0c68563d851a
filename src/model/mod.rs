//! What the broker's resources are and the rules they follow, each defined once: a client, a
//! route, an email address and its domain, a URL the broker may trust. Config, store and admin
//! API are views of these. This layer imports nothing of the crate above it.

pub mod client;
pub mod email;
pub mod route;
pub mod url;

pub use client::{
    AdapterKind, ClaimMapping, ClientSpec, Deprovision, Fallback, FieldProblem, KeyType, Rules, SigningAlgorithm,
    SubjectMode, TokenAuthMethod, PROTECTED_CLAIMS,
};
pub use email::{email_domain, normalize_domain, split_email, InvalidDomain};
pub use route::{Route, RouteSource};
