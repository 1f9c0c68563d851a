//! The versioned-resource service under the admin API. Clients and routes are both a JSON
//! document under one store key; everything the API does with them is the same and lives here
//! once: the role check, paging, the ETag (`If-Match`, compare-and-set on the stored bytes),
//! JSON merge patch (RFC 7396), validation failures as JSON Pointers, the audit line, and how
//! each failure becomes problem+json. A handler says which resource, and little else.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{audit, problem, Caller, FieldError, Problem, Role};
use crate::store::StoreError;
use crate::tokens::sha256_hex;

/// An item as stored, with the bytes its version is taken from.
pub type Versioned<T> = Option<(T, Vec<u8>)>;

/// A kind of resource kept in the store, as the admin API sees it.
pub trait Collection: Sync {
    type Item: Serialize + DeserializeOwned + Clone + Send + Sync;
    /// `client`, `route`: in audit actions and messages.
    const KIND: &'static str;

    fn id(item: &Self::Item) -> &str;
    fn read(&self, id: &str) -> impl Future<Output = Result<Versioned<Self::Item>, StoreError>> + Send;
    /// Every item, sorted by id.
    fn list(&self) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;
    /// Writes `item` only if the stored bytes are still `expected` (None: only if absent).
    fn replace(
        &self,
        item: &Self::Item,
        expected: Option<&[u8]>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// What an audit line shows of an item (credential check values left out).
    fn audit_view(item: &Self::Item) -> Value {
        serde_json::to_value(item).unwrap_or_default()
    }
}

/// Why a request was refused; [`Failure::problem`] is its answer.
#[derive(Debug)]
pub enum Failure {
    ReadOnly,
    BadQuery(String),
    NotFound(String),
    Exists(String),
    Conflict(String),
    Invalid(Vec<FieldError>),
    IfMatchRequired,
    Stale,
    Unavailable(StoreError),
    NoRandomness,
    /// A bug: logged where it happens, a generic answer.
    Internal,
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::BadQuery(_) => 400,
            Failure::ReadOnly => 403,
            Failure::NotFound(_) => 404,
            Failure::Exists(_) | Failure::Conflict(_) => 409,
            Failure::Stale => 412,
            Failure::Invalid(_) => 422,
            Failure::IfMatchRequired => 428,
            Failure::Unavailable(_) | Failure::NoRandomness => 503,
            Failure::Internal => 500,
        }
    }

    pub fn problem(self) -> poem_openapi::payload::Json<Problem> {
        let status = self.status();
        match self {
            Failure::ReadOnly => problem(status, "this token is read-only"),
            Failure::BadQuery(detail) | Failure::NotFound(detail) | Failure::Exists(detail) => problem(status, detail),
            Failure::Conflict(detail) => problem(status, detail),
            Failure::Invalid(errors) => poem_openapi::payload::Json(Problem::invalid(errors)),
            Failure::IfMatchRequired => problem(status, "send If-Match with the ETag from a GET"),
            Failure::Stale => problem(status, "changed since it was read; GET it again"),
            Failure::Unavailable(error) => super::unavailable(error),
            Failure::NoRandomness => problem(status, "no randomness"),
            Failure::Internal => problem(status, "internal error"),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Unavailable(error)
    }
}

/// `impl From<Failure>` for an operation's response enum, whose variants are named by status.
/// A failure the operation does not document cannot happen there; it answers as 503.
macro_rules! answers {
    ($response:ident { $($status:literal => $variant:ident),* $(,)? }) => {
        impl From<$crate::admin::resource::Failure> for $response {
            fn from(failure: $crate::admin::resource::Failure) -> Self {
                match failure.status() {
                    $($status => $response::$variant(failure.problem()),)*
                    _ => {
                        tracing::error!(?failure, "an admin failure the operation does not document");
                        $response::Unavailable($crate::admin::problem(503, "internal error"))
                    }
                }
            }
        }
    };
}
pub(crate) use answers;

/// A strong ETag of the stored bytes.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(&String::from_utf8_lossy(bytes))[..16])
}

fn etag_matches(if_match: &str, current: &str) -> bool {
    if_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == current)
}

/// Whether updates must name the version they change (PATCH) or may (DELETE, actions).
#[derive(Clone, Copy)]
pub enum IfMatch<'a> {
    Required(Option<&'a str>),
    Optional(Option<&'a str>),
}

/// A page of items after `cursor` (the last id of the previous page; any string is a valid
/// position), at most `limit`, with the cursor of the next page if there is one.
pub async fn page<C: Collection>(
    collection: &C,
    limit: Option<u32>,
    cursor: Option<&str>,
    keep: impl Fn(&C::Item) -> bool,
) -> Result<(Vec<C::Item>, Option<String>), Failure> {
    let limit = limit.unwrap_or(super::DEFAULT_PAGE);
    if !(1..=super::MAX_PAGE).contains(&limit) {
        return Err(Failure::BadQuery(format!("limit must be between 1 and {}", super::MAX_PAGE)));
    }
    let after = cursor.filter(|c| !c.is_empty());
    let items = collection.list().await?;
    let mut matching = items.into_iter().filter(|i| keep(i)).filter(|i| after.is_none_or(|after| C::id(i) > after));
    let page: Vec<C::Item> = matching.by_ref().take(limit as usize).collect();
    let next = if matching.next().is_some() { page.last().map(|i| C::id(i).to_owned()) } else { None };
    Ok((page, next))
}

/// The item and its ETag.
pub async fn get<C: Collection>(collection: &C, id: &str) -> Result<(C::Item, String), Failure> {
    match collection.read(id).await? {
        Some((item, bytes)) => Ok((item, etag(&bytes))),
        None => Err(Failure::NotFound(format!("no {} {id}", C::KIND))),
    }
}

/// Stores a new item (refused if its id exists) and answers it with its ETag.
pub async fn create<C: Collection>(
    collection: &C,
    caller: &Caller,
    item: C::Item,
) -> Result<(C::Item, String), Failure> {
    writable(caller)?;
    let id = C::id(&item).to_owned();
    if !collection.replace(&item, None).await? {
        return Err(Failure::Exists(format!("a {} {id} exists", C::KIND)));
    }
    audit(caller, &format!("{}.create", C::KIND), &id, None, Some(&C::audit_view(&item)));
    current_tag(collection, item).await
}

/// Reads the item, checks `If-Match`, applies `change` (which validates), and writes it back
/// only if nobody changed it meanwhile. `action` names the change in the audit line.
pub async fn modify<C: Collection, T>(
    collection: &C,
    caller: &Caller,
    id: &str,
    if_match: IfMatch<'_>,
    action: &str,
    change: impl FnOnce(&mut C::Item) -> Result<T, Failure>,
) -> Result<(C::Item, String, T), Failure> {
    writable(caller)?;
    let (current, bytes) = found::<C>(collection.read(id).await?, id)?;
    check_version(if_match, &bytes)?;
    let mut item = current.clone();
    let extra = change(&mut item)?;
    if !collection.replace(&item, Some(&bytes)).await? {
        return Err(Failure::Stale);
    }
    audit(caller, &format!("{}.{action}", C::KIND), id, Some(&C::audit_view(&current)), Some(&C::audit_view(&item)));
    let (item, tag) = current_tag(collection, item).await?;
    Ok((item, tag, extra))
}

pub async fn delete<C: Collection>(
    collection: &C,
    caller: &Caller,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), Failure> {
    writable(caller)?;
    let (current, bytes) = found::<C>(collection.read(id).await?, id)?;
    check_version(IfMatch::Optional(if_match), &bytes)?;
    collection.delete(id).await?;
    audit(caller, &format!("{}.delete", C::KIND), id, Some(&C::audit_view(&current)), None);
    Ok(())
}

/// Applies a JSON merge patch (RFC 7396) to `item`'s JSON form and reads the result back as
/// the model, whose deserialization is the first check (a required field cleared, a value of
/// the wrong form); the model's own rules come after, in the caller.
pub fn merge_patch<T: Serialize + DeserializeOwned>(item: &T, patch: Value) -> Result<T, Failure> {
    let mut document = serde_json::to_value(item).map_err(|e| invalid("", e.to_string()))?;
    merge(&mut document, patch);
    from_json(document)
}

/// A model from JSON, a failure naming the field where serde names one.
pub fn from_json<T: DeserializeOwned>(document: Value) -> Result<T, Failure> {
    serde_json::from_value(document).map_err(|error| {
        let message = error.to_string();
        let field = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|marker| message.split(marker).nth(1).and_then(|rest| rest.split('`').next()))
            .or_else(|| {
                message
                    .split_whitespace()
                    .next()
                    .filter(|word| word.chars().all(|c| c == '_' || c.is_ascii_lowercase()))
            })
            .unwrap_or("")
            .to_owned();
        invalid(&field, message)
    })
}

/// An object's members that are not null: a create body's absent optional fields, which
/// poem-openapi writes as null.
pub fn without_nulls(document: Option<Value>) -> Value {
    match document {
        Some(Value::Object(map)) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect::<Map<_, _>>()),
        other => other.unwrap_or(Value::Null),
    }
}

pub fn invalid(field: &str, detail: impl Into<String>) -> Failure {
    let pointer = if field.is_empty() { String::new() } else { format!("/{field}") };
    Failure::Invalid(vec![FieldError { pointer, detail: detail.into() }])
}

fn merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(&key);
            } else {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

pub fn writable(caller: &Caller) -> Result<(), Failure> {
    if caller.role == Role::Write {
        Ok(())
    } else {
        Err(Failure::ReadOnly)
    }
}

fn found<C: Collection>(read: Versioned<C::Item>, id: &str) -> Result<(C::Item, Vec<u8>), Failure> {
    read.ok_or_else(|| Failure::NotFound(format!("no {} {id}", C::KIND)))
}

fn check_version(if_match: IfMatch<'_>, bytes: &[u8]) -> Result<(), Failure> {
    match if_match {
        IfMatch::Required(None) => Err(Failure::IfMatchRequired),
        IfMatch::Required(Some(tag)) | IfMatch::Optional(Some(tag)) if !etag_matches(tag, &etag(bytes)) => {
            Err(Failure::Stale)
        }
        _ => Ok(()),
    }
}

/// The item as just written, with the ETag of its stored bytes.
async fn current_tag<C: Collection>(collection: &C, item: C::Item) -> Result<(C::Item, String), Failure> {
    let tag = collection.read(C::id(&item)).await?.map(|(_, bytes)| etag(&bytes)).unwrap_or_default();
    Ok((item, tag))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // RFC 7396 Appendix A, a few of its cases.
        for (target, patch, result) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        ] {
            let mut document = target;
            merge(&mut document, patch);
            assert_eq!(document, result);
        }
    }

    #[test]
    fn if_match_compares_with_the_stored_version() {
        let tag = etag(b"{}");
        assert!(check_version(IfMatch::Required(Some(&tag)), b"{}").is_ok());
        assert!(check_version(IfMatch::Required(Some("*")), b"{}").is_ok());
        assert!(check_version(IfMatch::Required(Some(&format!("W/{tag}"))), b"{}").is_ok());
        assert!(matches!(check_version(IfMatch::Required(Some(&tag)), b"[]"), Err(Failure::Stale)));
        assert!(matches!(check_version(IfMatch::Required(None), b"{}"), Err(Failure::IfMatchRequired)));
        assert!(check_version(IfMatch::Optional(None), b"{}").is_ok());
    }
}
