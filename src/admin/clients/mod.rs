//! `/admin/clients`: register, inspect, change and remove downstream clients. Each handler
//! turns its request into the model ([`ClientSpec`]) and hands it to the resource service.

mod view;

use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::OpenApi;

pub use self::view::*;
use super::resource::{self, Collection, Failure, IfMatch};
use super::{AdminToken, FieldError, Tag};
use crate::clients::{ClientRecord, ClientRegistry};
use crate::model::{ClientSpec, FieldProblem, Rules};
use crate::state::AppState;
use crate::store::StoreError;
use crate::tokens::{hash_secret, random_token, SigningAlgorithm};

pub struct ClientsApi {
    pub state: Arc<AppState>,
}

impl Collection for ClientRegistry {
    type Item = ClientRecord;
    const KIND: &'static str = "client";

    fn id(item: &ClientRecord) -> &str {
        &item.client_id
    }
    async fn read(&self, id: &str) -> Result<Option<(ClientRecord, Vec<u8>)>, StoreError> {
        ClientRegistry::read(self, id).await
    }
    async fn list(&self) -> Result<Vec<ClientRecord>, StoreError> {
        ClientRegistry::list(self).await
    }
    async fn replace(&self, item: &ClientRecord, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        ClientRegistry::replace(self, item, expected).await
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        ClientRegistry::delete(self, id).await
    }
    fn audit_view(item: &ClientRecord) -> serde_json::Value {
        // The secret hash is not a secret to reverse, but it is a credential check value: keep
        // it out of audit lines all the same.
        let mut value = serde_json::to_value(item).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("secret_hash");
        }
        value
    }
}

/// The API's view of a record: the spec's JSON form read as the schema type.
fn view(record: &ClientRecord) -> Result<Client, Failure> {
    let mut document = serde_json::to_value(&record.spec).map_err(|e| resource::invalid("", e.to_string()))?;
    document["source"] = record.source.clone().into();
    Client::parse_from_json(Some(document)).map_err(|e| {
        tracing::error!(error = %e.message(), "a stored client does not fit the API schema");
        Failure::Internal
    })
}

impl ClientsApi {
    /// Every rule the spec breaks, as JSON Pointers into the body. `algorithms`: what the key
    /// ring signs with now.
    fn check(&self, record: &ClientRecord, algorithms: &[SigningAlgorithm]) -> Result<(), Failure> {
        // Adapter credentials live in the config file, so only config clients can have one.
        let rules = Rules {
            signing_algorithms: algorithms,
            allow_private_networks: self.state.config.outbound.allow_private_networks,
            adapter_settings: record.source == "config",
        };
        let errors: Vec<FieldError> = record
            .problems(&rules)
            .into_iter()
            .map(|FieldProblem { field, index, message }| FieldError {
                pointer: match index {
                    Some(i) => format!("/{field}/{i}"),
                    None => format!("/{field}"),
                },
                detail: message,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::Invalid(errors))
        }
    }

    /// A record for a new client from the request body, with a new secret unless it uses keys.
    async fn new_record(&self, body: ClientCreate) -> Result<(ClientRecord, Option<String>), Failure> {
        let mut document = resource::without_nulls(body.to_json());
        if document.get("client_id").is_none() {
            let id = random_token(12).map_err(|_| Failure::NoRandomness)?;
            document["client_id"] = format!("client-{id}").into();
        }
        let spec: ClientSpec = resource::from_json(document)?;
        let secret = match spec.token_endpoint_auth_method.uses_secret() {
            true => Some(random_token(32).map_err(|_| Failure::NoRandomness)?),
            false => None,
        };
        let secret_hash = secret.as_deref().map(hash_secret).transpose().map_err(|_| Failure::NoRandomness)?;
        let record = ClientRecord { spec, secret_hash: secret_hash.unwrap_or_default(), source: "api".into() };
        self.check(&record, &self.state.keys.algorithms().await)?;
        Ok((record, secret))
    }
}

#[OpenApi(tag = "Tag::Clients")]
impl ClientsApi {
    /// List clients
    ///
    /// Sorted by `client_id`; `q` filters by a `client_id` prefix.
    #[oai(path = "/clients", method = "get")]
    async fn list(
        &self,
        _auth: AdminToken,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// From a previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Only clients whose `client_id` starts with this.
        q: Query<Option<String>>,
    ) -> ListResponse {
        let prefix = q.0.unwrap_or_default();
        let page =
            resource::page(&self.state.clients, limit.0, cursor.0.as_deref(), |r| r.client_id.starts_with(&prefix));
        let answer = async {
            let (records, next_cursor) = page.await?;
            let items = records.iter().map(view).collect::<Result<_, _>>()?;
            Ok::<_, Failure>(ClientPage { items, next_cursor })
        };
        answer.await.map_or_else(Into::into, |page| ListResponse::Ok(Json(page)))
    }

    /// Register a client
    ///
    /// The secret is generated by the server and returned only in this response.
    #[oai(path = "/clients", method = "post")]
    async fn create(&self, auth: AdminToken, body: Json<ClientCreate>) -> CreateResponse {
        let answer = async {
            resource::writable(&auth.0)?;
            let (record, client_secret) = self.new_record(body.0).await?;
            let (record, tag) = resource::create(&self.state.clients, &auth.0, record).await?;
            let location = format!(
                "/admin/clients/{}",
                url::form_urlencoded::byte_serialize(record.client_id.as_bytes()).collect::<String>()
            );
            Ok::<_, Failure>(CreateResponse::Created(
                Json(ClientWithSecret { client: view(&record)?, client_secret }),
                location,
                tag,
            ))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Get a client
    #[oai(path = "/clients/:client_id", method = "get")]
    async fn get(&self, _auth: AdminToken, client_id: Path<String>) -> GetResponse {
        let answer = async {
            let (record, tag) = resource::get(&self.state.clients, &client_id.0).await?;
            Ok::<_, Failure>(GetResponse::Ok(Json(view(&record)?), tag))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Update a client
    ///
    /// A partial update. Send the ETag from a previous GET in `If-Match`; a stale one is
    /// refused with 412, so that two admins do not overwrite each other.
    #[oai(path = "/clients/:client_id", method = "patch")]
    async fn update(
        &self,
        auth: AdminToken,
        client_id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<ClientPatch>,
    ) -> UpdateResponse {
        let algorithms = self.state.keys.algorithms().await;
        let answer = async {
            let if_match = IfMatch::Required(if_match.0.as_deref());
            let (record, tag, ()) =
                resource::modify(&self.state.clients, &auth.0, &client_id.0, if_match, "update", |record| {
                    record.spec = resource::merge_patch(&record.spec, body.0.to_json().unwrap_or_default())?;
                    self.check(record, &algorithms)
                })
                .await?;
            Ok::<_, Failure>(UpdateResponse::Ok(Json(view(&record)?), tag))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Rotate a client's secret
    ///
    /// A new secret replaces the old one at once; it is returned only in this response.
    #[oai(path = "/clients/:client_id/secret", method = "post")]
    async fn rotate_secret(&self, auth: AdminToken, client_id: Path<String>) -> SecretResponse {
        let answer = async {
            let (record, tag, secret) = resource::modify(
                &self.state.clients,
                &auth.0,
                &client_id.0,
                IfMatch::Optional(None),
                "rotate_secret",
                |record| {
                    if !record.token_endpoint_auth_method.uses_secret() {
                        return Err(Failure::Conflict(
                            "this client authenticates with private_key_jwt; change its keys (jwks, jwks_uri) instead"
                                .into(),
                        ));
                    }
                    let secret = random_token(32).map_err(|_| Failure::NoRandomness)?;
                    record.secret_hash = hash_secret(&secret).map_err(|_| Failure::NoRandomness)?;
                    Ok(secret)
                },
            )
            .await?;
            Ok::<_, Failure>(SecretResponse::Ok(
                Json(ClientWithSecret { client: view(&record)?, client_secret: Some(secret) }),
                tag,
            ))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Delete a client
    ///
    /// Logins in progress for it fail; tokens already issued stay valid until they expire.
    /// `If-Match` is honoured when sent.
    #[oai(path = "/clients/:client_id", method = "delete")]
    async fn delete(
        &self,
        auth: AdminToken,
        client_id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> DeleteResponse {
        match resource::delete(&self.state.clients, &auth.0, &client_id.0, if_match.0.as_deref()).await {
            Ok(()) => DeleteResponse::Deleted,
            Err(failure) => failure.into(),
        }
    }
}
