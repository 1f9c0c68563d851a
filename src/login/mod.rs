//! The login itself, below its HTTP faces (`oidc`): what a login keeps in the store while the
//! user is away and how long ([`records`]), and its steps, each a function of the shared state:
//!
//! - [`begin()`]: a validated authorization request, routed (`routing` decides): the upstream,
//!   with the flow stored, or the home-realm page;
//! - [`home_realm`]: the request held while the page asks for an email, and the email typed;
//! - [`initiation`]: an IdP-initiated login handed to its client, then recalled at the
//!   client's `/authorize`;
//! - [`finish()`]: the upstream's answer verified, the user linked by the client's adapter, a
//!   code minted;
//! - [`authenticate_client()`] and [`redeem()`]: the code exchanged for tokens at `/token`;
//! - [`userinfo()`]: an access token's claims;
//! - [`sessions`] and [`logout`]: the broker session each login opens, and its end: a user
//!   signing out (RP-Initiated Logout) or deprovisioned, and the clients told (Back-Channel
//!   Logout).
//!
//! Each attempt ends in one event in the event log and its counters ([`attempt`]), recorded
//! where the step returns.
//!
//! Failures are [`LoginError`]s (at `/token` and `/userinfo`, [`OidcError`]s), which say what
//! the client or the user is told; `oidc::error` alone turns them into responses. Nothing here
//! speaks HTTP.

pub mod attempt;
mod begin;
mod client_auth;
mod error;
mod finish;
pub mod home_realm;
pub mod initiation;
pub mod logout;
pub mod records;
mod redeem;
pub mod sessions;
mod userinfo;

pub use self::begin::{begin, Next};
pub use self::client_auth::{authenticate as authenticate_client, ClientCredentials};
pub use self::error::{capitalized, unsolicited_upstream_error, upstream_reason, ErrorCode, LoginError, OidcError};
pub use self::error::{REASONS, UPSTREAM_ERRORS};
pub use self::finish::{finish, Finished, UpstreamAnswer};
pub use self::records::{AuthorizationRequest, Flow, Reauthentication};
pub use self::redeem::{redeem, CodeRedemption, Tokens};
pub use self::userinfo::userinfo;
