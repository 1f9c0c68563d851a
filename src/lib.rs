//! ssobridge: an identity broker between enterprise IdPs (through Scalekit) and the auth
//! system an application already runs (Auth0, Cognito, Firebase).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The store conformance suite is test support: it asserts, which is its job.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod app;
pub mod client_assertion;
pub mod clients;
pub mod clock;
pub mod config;
pub mod demo;
pub mod events;
pub mod export;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod limiter;
pub mod login;
pub mod model;
pub mod oidc;
pub mod ops;
pub mod pages;
pub mod people;
pub mod routing;
pub mod secret;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod upstream;
pub mod webhooks;
