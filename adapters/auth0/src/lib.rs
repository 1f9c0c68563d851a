//! The Auth0 adapter: keeps the users of an Auth0 tenant in step with ssobridge logins.
//!
//! To Auth0, ssobridge is an enterprise OIDC connection (strategy `oidc`, see
//! `deploy/recipes/auth0.md`). A user who signs in through it is the Auth0 user
//! `oidc|CONNECTION|SUB`, whose `identities[0]` is `{provider: "oidc", connection: CONNECTION,
//! user_id: "CONNECTION|SUB"}`, where SUB is the `sub` ssobridge issues ([`Identity::subject`]).
//!
//! # Why "create" means "let the login create it"
//!
//! The Management API cannot create users of an OIDC connection: Auth0 creates
//! `oidc|CONNECTION|SUB` itself when it redeems ssobridge's code, which is *after* ssobridge
//! calls this adapter. And Auth0 links only users that exist ("Linking an inexistent identity
//! is not allowed"). So the adapter acts on what exists when it is called:
//!
//! | when the adapter is called | what it does | outcome |
//! |---|---|---|
//! | the identity is already linked into a user P (by ssobridge, the post-login Action, or by hand) | nothing but `app_metadata` | `Linked(P)` |
//! | first login: no Auth0 user holds the identity yet | nothing: Auth0 creates it at this login | `Created(oidc\|CONNECTION\|SUB)` |
//! | first login, unverified email, another user has that email | — | `Refused` (readable reason) |
//! | first login, verified email, other users have it but none of them verified | — (an audit line names one) | `Refused` (readable reason) |
//! | returning login, the OIDC user S exists unlinked, email verified, exactly one *other* user P with that email, P's email verified | links S into P (`POST /users/P/identities` with S's `identities[]` provider and user_id) | `Linked(P)` |
//! | returning login, anything else (no such P, several, unverified email, accounts already linked into S) | keeps S apart | `Linked(S)` |
//!
//! A first login whose verified email matches an existing user therefore ends, at Auth0, in
//! the new OIDC user; from the next login on it is linked and Auth0 signs the user in as P.
//! To join the accounts already at the first login, install the post-login Action from the
//! recipe: it runs after Auth0 created the user, links by verified email the same way and
//! switches the login to the primary. Both can run; each treats "already linked" as done.
//!
//! Every sign-in also merges `org_id` and `connection_id` into the resolved user's
//! `app_metadata` (only when they differ, to spare the rate limit).
//!
//! Safety rules: link by email only when [`Identity::email_verified`] is true *and* the other
//! account's email is verified (an unverified account pre-registered with a victim's address
//! must not collect the victim's SSO identity), and refuse a first login whose address only
//! such accounts hold rather than let Auth0 put the person's user beside them; compare emails in lower case (users-by-email
//! is case-sensitive; Auth0 stores database emails in lower case); never link on search results
//! alone (search is eventually consistent): decide with the immediately consistent reads;
//! a refused link (409, or 400 for a secondary already merged by a racing login) is re-read,
//! not reported.
//!
//! # After the login: disable, enable, delete, roles
//!
//! The [`Adapter`] operations on a user take the id a `link` reported:
//!
//! - `disable`: `PATCH /users/{id} {"blocked": true}` (Auth0 then refuses the user's logins),
//!   then, best effort, `DELETE /users/{id}/sessions` and `DELETE /users/{id}/refresh-tokens`
//!   (Enterprise plans; when Auth0 refuses them the block stands and a warning says so; access
//!   tokens already issued live until they expire);
//! - `enable`: `{"blocked": false}`; `delete`: `DELETE /users/{id}`;
//! - `set_roles`: `app_metadata.roles` (only the managed names change) and `app_metadata.groups`,
//!   first-level merged, written only when they change; with `assign_roles` also the tenant's
//!   Auth0 roles of the same names (assigned and removed by id; a missing role is
//!   `Misconfigured` and nothing is written).
//!
//! An id `oidc|CONNECTION|SUB` that a later login linked into an older account (so it no longer
//! exists) is followed to that account. A first login's user does not exist until Auth0 redeems
//! the broker's code: an operation on it before then is `NotFound` (retry it later). Scopes:
//! `deploy/recipes/auth0.md`.
//!
//! [`Adapter`]: ssobridge_adapter_core::Adapter
//! [`Identity::subject`]: ssobridge_adapter_core::Identity::subject
//! [`Identity::email_verified`]: ssobridge_adapter_core::Identity::email_verified

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod adapter;
mod api;
mod http;
mod lifecycle;
mod settings;
mod token;

pub use adapter::Auth0Adapter;
pub use lifecycle::{GROUPS_KEY, ROLES_KEY};
pub use settings::Auth0Settings;
