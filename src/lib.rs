//! ssobridge: an identity broker between enterprise IdPs (through Scalekit) and the auth
//! system an application already runs (Auth0, Cognito, Firebase).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The store conformance suite is test support: it asserts, which is its job.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod app;
pub mod clients;
pub mod config;
pub mod demo;
pub mod events;
pub mod export;
pub mod http;
pub mod limiter;
pub mod model;
pub mod oidc;
pub mod pages;
pub mod protect;
pub mod routing;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod upstream;
pub mod webhooks;
