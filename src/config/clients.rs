//! `[[clients]]` and `[[routes]]`: the model's client and route as the file writes them, with
//! what only the file holds (a client's secret and its adapter's downstream credentials).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use ssobridge_adapter_auth0::{Auth0Adapter, Auth0Settings};
use ssobridge_adapter_cognito::{CognitoAdapter, CognitoSettings};
use ssobridge_adapter_core::{Adapter, AdapterError, NoopAdapter};
use ssobridge_adapter_firebase::{FirebaseAdapter, FirebaseSettings};

use super::{Environment, Problem};
use crate::model::client::{is_client_id, is_secret_hash, FieldProblem, Rules};
use crate::model::{AdapterKind, ClientSpec, Fallback, Route, SigningAlgorithm};
use crate::secret::Secret;

/// A `[[clients]]` entry: the client as every view shares it ([`ClientSpec`], flattened into
/// the same table) plus what only the config file holds: the secret and the adapter's
/// downstream credentials.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub spec: ClientSpec,
    /// The secret in clear (from the environment, ideally) ...
    pub client_secret: Option<Secret>,
    /// ... or its hash, as `export-config` writes it: the salted form the store keeps, or a
    /// bare hex SHA-256 (also accepted as `client_secret_sha256`).
    pub client_secret_hash: Option<String>,
    /// Settings of `adapter = "auth0"` (kept in the config file and environment, never in the store).
    pub auth0: Option<Auth0Settings>,
    /// Settings of `adapter = "cognito"`.
    pub cognito: Option<CognitoSettings>,
    /// Settings of `adapter = "firebase"`.
    pub firebase: Option<FirebaseSettings>,
}

impl std::ops::Deref for ClientConfig {
    type Target = ClientSpec;
    fn deref(&self) -> &ClientSpec {
        &self.spec
    }
}

impl<'de> Deserialize<'de> for ClientConfig {
    /// The file's own keys are taken out; the rest must be exactly a [`ClientSpec`], so an
    /// unknown key is still refused by name.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn take<'de, T: Deserialize<'de>, E: serde::de::Error>(
            table: &mut toml::Table,
            names: &[&str],
        ) -> Result<Option<T>, E> {
            let Some(value) = names.iter().find_map(|name| table.remove(*name)) else { return Ok(None) };
            value.try_into().map(Some).map_err(|e: toml::de::Error| E::custom(e.message()))
        }
        let mut table = toml::Table::deserialize(deserializer)?;
        let client_secret = take(&mut table, &["client_secret"])?;
        let client_secret_hash = take(&mut table, &["client_secret_hash", "client_secret_sha256"])?;
        let auth0 = take(&mut table, &["auth0"])?;
        let cognito = take(&mut table, &["cognito"])?;
        let firebase = take(&mut table, &["firebase"])?;
        let spec =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| serde::de::Error::custom(e.message()))?;
        Ok(ClientConfig { spec, client_secret, client_secret_hash, auth0, cognito, firebase })
    }
}

impl ClientConfig {
    /// The settings of the client's adapter, if it has one and they are given.
    pub fn adapter_settings(&self) -> Option<AdapterSettings> {
        match self.adapter {
            AdapterKind::Auth0 => self.auth0.clone().map(AdapterSettings::Auth0),
            AdapterKind::Cognito => self.cognito.clone().map(AdapterSettings::Cognito),
            AdapterKind::Firebase => self.firebase.clone().map(AdapterSettings::Firebase),
            AdapterKind::None => None,
        }
    }
}

/// An adapter's settings. They hold downstream credentials, so they live in the config file
/// and environment only, never in the store.
#[derive(Clone)]
pub enum AdapterSettings {
    Auth0(Auth0Settings),
    Cognito(CognitoSettings),
    Firebase(FirebaseSettings),
}

impl AdapterSettings {
    /// The adapter of `kind` over `settings` (none needed for `AdapterKind::None`).
    pub fn build(kind: AdapterKind, settings: Option<&AdapterSettings>) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(match (kind, settings) {
            (AdapterKind::None, _) => Arc::new(NoopAdapter),
            (AdapterKind::Auth0, Some(AdapterSettings::Auth0(s))) => Arc::new(Auth0Adapter::new(s.clone())?),
            (AdapterKind::Cognito, Some(AdapterSettings::Cognito(s))) => Arc::new(CognitoAdapter::new(s.clone())?),
            (AdapterKind::Firebase, Some(AdapterSettings::Firebase(s))) => Arc::new(FirebaseAdapter::new(s.clone())?),
            _ => {
                return Err(AdapterError::Misconfigured {
                    detail: format!("no settings for the {} adapter", kind.name()),
                })
            }
        })
    }
}

/// What the client rules depend on beyond the clients.
pub(super) struct Context {
    pub has_ec_key: bool,
    pub allow_private_networks: bool,
    pub environment: Environment,
}

/// Everything wrong with the file's clients, keyed `clients[i].field`.
pub(super) fn problems(clients: &[ClientConfig], context: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    if clients.is_empty() {
        problems.push(Problem::new("clients", "at least one [[clients]] entry is needed"));
    }
    let mut algorithms = vec![SigningAlgorithm::Rs256, SigningAlgorithm::Ps256];
    if context.has_ec_key {
        algorithms.push(SigningAlgorithm::Es256);
    }
    let mut seen = HashSet::new();
    for (i, client) in clients.iter().enumerate() {
        let mut problem = |field: &str, message: String| {
            problems.push(Problem::new(format!("clients[{i}].{}", field.replace('/', ".")), message))
        };
        match (&client.client_secret, &client.client_secret_hash) {
            (None, None) if !client.token_endpoint_auth_method.uses_secret() => {}
            (Some(secret), None) if secret.expose().len() < 8 => {
                problem("client_secret", "must be at least 8 characters".to_owned())
            }
            (Some(_), None) => {}
            (None, Some(hash)) if !is_secret_hash(hash) => {
                problem("client_secret_hash", "must be a hash as export-config writes it, or a hex SHA-256".to_owned())
            }
            (None, Some(_)) => {}
            _ => problem("client_secret", "set client_secret or client_secret_hash (exactly one)".to_owned()),
        }
        let rules = Rules {
            signing_algorithms: &algorithms,
            allow_private_networks: context.allow_private_networks,
            adapter_settings: client.adapter == AdapterKind::None || client.adapter_settings().is_some(),
        };
        for FieldProblem { field, message, .. } in client.problems(&rules) {
            problem(field, message);
        }
        if is_client_id(&client.client_id) && !seen.insert(client.client_id.as_str()) {
            problem("client_id", format!("{} is listed twice", client.client_id));
        }
        if let Some(settings) = client.adapter_settings() {
            if let Err(error) = AdapterSettings::build(client.adapter, Some(&settings)) {
                problem("adapter", error.to_string());
            }
        }
        let emulated = client.firebase.as_ref().is_some_and(|f| f.emulator_host.is_some());
        if emulated && client.adapter == AdapterKind::Firebase && context.environment == Environment::Production {
            problem(
                "firebase.emulator_host",
                "the Firebase Auth emulator is a development tool; refused with SSOBRIDGE_ENV=production".to_owned(),
            );
        }
    }
    problems
}

/// Everything wrong with the file's routes, keyed `routes[i].field`.
pub(super) fn route_problems(routes: &[Route], clients: &[ClientConfig]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut domains = HashSet::new();
    for (i, route) in routes.iter().enumerate() {
        let mut problem =
            |field: &str, message: String| problems.push(Problem::new(format!("routes[{i}].{field}"), message));
        let mut route = route.clone();
        let route_problems = route.problems();
        let valid_domain = !route_problems.iter().any(|(field, _, _)| *field == "domain");
        for (field, _, message) in route_problems {
            problem(field, message);
        }
        if valid_domain && !domains.insert(route.domain.clone()) {
            problem("domain", format!("{} is listed twice", route.domain));
        }
        for client in &route.clients {
            if !clients.iter().any(|c| &c.client_id == client) {
                problem("clients", format!("{client} is not a configured client"));
            }
        }
    }
    for client in clients {
        if let Fallback::Route(domain) = &client.fallback {
            let known = routes.iter().any(|r| crate::model::normalize_domain(&r.domain).as_deref() == Ok(domain));
            if !known {
                // Routes may also be added at run time; say so rather than refuse.
                tracing::warn!(client = %client.client_id, %domain, "fallback route is not in the config file");
            }
        }
    }
    problems
}
