//! What `/readyz` answers, and the background checks that keep it current: the store (a PING,
//! re-seeding it if it lost the configuration), the upstream (its discovery document and keys,
//! fetched again) and the broker's client credentials there (a client_credentials grant: at
//! start, then rarely, so that a wrong secret is an error in the log before the first user
//! meets it). `/readyz` answers from their last result, so that probes cost neither the store
//! nor the upstream a request, and an outsider cannot make them.

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::AppState;
use crate::upstream::Credentials;

const STORE_CHECK_EVERY: Duration = Duration::from_secs(2);
const UPSTREAM_CHECK_EVERY: Duration = Duration::from_secs(10);
const CREDENTIALS_CHECK_EVERY: Duration = Duration::from_secs(300);

type Slot<T> = std::sync::RwLock<Option<T>>;

/// The last result of each background check.
#[derive(Default)]
pub struct Readiness {
    store: Slot<Result<(), String>>,
    upstream: Slot<Result<(), String>>,
    /// The upstream's answer about the credentials; an error when it could not be asked.
    credentials: Slot<Result<Credentials, String>>,
}

/// What `/readyz` says of each check: `ok`, `unavailable`, or `starting` (not checked yet);
/// the credentials may also be `unknown` (the upstream grants no client_credentials, so it
/// cannot tell), which counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessReport {
    pub store: &'static str,
    pub upstream: &'static str,
    pub credentials: &'static str,
}

impl ReadinessReport {
    pub fn ready(&self) -> bool {
        self.store == "ok" && self.upstream == "ok" && matches!(self.credentials, "ok" | "unknown")
    }
}

impl Readiness {
    fn set<T>(slot: &Slot<T>, result: T) {
        *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(result);
    }

    /// `ssobridge_ready{check}`: 1 for each check `/readyz` counts as passed, else 0.
    fn export(&self) {
        let report = self.report();
        for (check, word) in
            [("store", report.store), ("upstream", report.upstream), ("credentials", report.credentials)]
        {
            let passed = matches!(word, "ok") || (check == "credentials" && word == "unknown");
            crate::telemetry::gauge("ssobridge_ready", &[("check", check)], if passed { 1.0 } else { 0.0 });
        }
    }

    fn get<T: Clone>(slot: &Slot<T>) -> Option<T> {
        slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn report(&self) -> ReadinessReport {
        let word = |result: Option<Result<(), String>>| match result {
            Some(Ok(())) => "ok",
            Some(Err(_)) => "unavailable",
            None => "starting",
        };
        let credentials = match Self::get(&self.credentials) {
            Some(Ok(Credentials::Accepted)) => "ok",
            Some(Ok(Credentials::Unknown(_))) => "unknown",
            Some(Ok(Credentials::Refused) | Err(_)) => "unavailable",
            None => "starting",
        };
        ReadinessReport { store: word(Self::get(&self.store)), upstream: word(Self::get(&self.upstream)), credentials }
    }
}

/// Checks the store (re-seeding it if it lost the configuration), the upstream and the
/// broker's credentials there in the background, for as long as the state lives.
pub(super) async fn check(state: Weak<AppState>) {
    let mut upstream_checked: Option<Instant> = None;
    let mut credentials_due = Instant::now();
    loop {
        let Some(app) = state.upgrade() else { return };
        // Bounded: a store that hangs is as unavailable as one that refuses.
        let store = match tokio::time::timeout(STORE_CHECK_EVERY, app.reseed_if_lost()).await {
            Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err("no answer within the check interval".to_owned()),
        };
        if let Err(error) = &store {
            tracing::warn!(error = %error, "readiness: the store is unavailable");
        }
        Readiness::set(&app.readiness.store, store);
        if upstream_checked.is_none_or(|at| at.elapsed() >= UPSTREAM_CHECK_EVERY) {
            let upstream = app.upstream.discover().await.map_err(|e| e.to_string());
            if let Err(error) = &upstream {
                tracing::warn!(error = %error, "readiness: the upstream is unavailable");
            }
            // The token endpoint is the discovery document's: asked once that is known.
            if upstream.is_ok() && Instant::now() >= credentials_due {
                let checked = app.upstream.check_credentials().await.map_err(|e| e.to_string());
                let previous = Readiness::get(&app.readiness.credentials);
                log_credentials(previous.as_ref(), &checked);
                // One that could not be asked is asked again with the next upstream check.
                credentials_due =
                    Instant::now() + if checked.is_ok() { CREDENTIALS_CHECK_EVERY } else { UPSTREAM_CHECK_EVERY };
                Readiness::set(&app.readiness.credentials, checked);
            }
            Readiness::set(&app.readiness.upstream, upstream);
            upstream_checked = Some(Instant::now());
        }
        app.readiness.export();
        drop(app);
        tokio::time::sleep(STORE_CHECK_EVERY).await;
    }
}

/// One line when what the upstream says of the credentials changes (a refusal is an error that
/// names the key to fix, never its value), and a warning each time it cannot be asked.
fn log_credentials(previous: Option<&Result<Credentials, String>>, checked: &Result<Credentials, String>) {
    let changed = previous != Some(checked);
    match checked {
        Ok(Credentials::Refused) if changed => tracing::error!(
            "the upstream refuses the broker's client credentials (invalid_client): check upstream.client_secret \
             (and upstream.client_id); every sign-in fails at its callback until they match"
        ),
        Ok(Credentials::Unknown(answer)) if changed => tracing::info!(
            answer = %answer,
            "the upstream grants no client_credentials, so it cannot confirm the client credentials; counted as ready"
        ),
        Ok(Credentials::Accepted) if changed => tracing::info!("the upstream accepts the broker's client credentials"),
        Ok(_) => {}
        Err(error) => tracing::warn!(error = %error, "readiness: the client credentials could not be checked"),
    }
}
