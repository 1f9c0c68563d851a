//! The end-to-end tests: the real service against real peers (redis-server, the
//! `oidc-provider` upstream, `ssobridge simulator`, the `openid-client` relying party, moto,
//! the Firebase Auth emulator, the fake Auth0 tenant behind Prism, Chromium), started on
//! loopback by the harness in [`common`]. One test crate, so that the suite links once.

mod common;

// The adapter crates' own test harnesses, shared with their conformance tests.
#[allow(dead_code, clippy::all)]
#[path = "../../adapters/auth0/tests/common/mod.rs"]
mod auth0;
#[allow(dead_code, clippy::all)]
#[path = "../../adapters/cognito/tests/support/mod.rs"]
mod cognito;
#[allow(dead_code, clippy::all)]
#[path = "../../adapters/firebase/tests/common/mod.rs"]
mod firebase;

mod adapter_auth0;
mod adapter_cognito;
mod adapter_firebase;
mod admin_api;
mod admin_fuzz;
mod attacks;
mod browser;
mod chart;
mod cli;
mod console;
mod dashboards;
mod demo;
mod events;
mod failures;
mod fuzz_parsers;
mod lifecycle;
mod login;
mod logout;
mod operate;
mod redis_cluster;
mod redis_tls;
mod route_sync;
mod routing;
mod security;
mod signing_and_client_auth;
mod simulator;
mod store_conformance;
mod topology;
