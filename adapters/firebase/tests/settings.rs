//! The `[clients.firebase]` table: what is accepted, what is refused at start, what never shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{service_account_key, settings, PROJECT_ID, SERVICE_ACCOUNT};
use serde_json::{json, Value};
use ssobridge_adapter_core::{Adapter, AdapterError};
use ssobridge_adapter_firebase::{FirebaseAdapter, FirebaseSettings};

fn production(extra: Value) -> Value {
    let (pem, _) = service_account_key();
    let mut value = json!({"project_id": PROJECT_ID, "service_account_email": SERVICE_ACCOUNT, "private_key": pem});
    value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    value
}

fn refused(value: Value) -> String {
    match FirebaseAdapter::new(settings(value)) {
        Err(AdapterError::Misconfigured { detail }) => detail,
        other => panic!("expected Misconfigured, got {other:?}"),
    }
}

#[test]
fn a_production_client_with_a_pem_key_is_accepted() {
    let adapter = FirebaseAdapter::new(settings(production(json!({"tenant_id": "acme-x1y2z", "timeout_seconds": 5}))))
        .expect("valid settings");
    assert_eq!(adapter.name(), "firebase");
}

#[test]
fn unknown_keys_are_refused() {
    let err = serde_json::from_value::<FirebaseSettings>(production(json!({"private_key_file": "k.pem"})))
        .expect_err("deny_unknown_fields");
    assert!(err.to_string().contains("private_key_file"), "{err}");
}

#[test]
fn production_needs_exactly_one_key() {
    let no_key = json!({"project_id": PROJECT_ID, "service_account_email": SERVICE_ACCOUNT});
    assert!(refused(no_key).contains("private_key or service_account_file"));
    let both = production(json!({"service_account_file": "/nonexistent.json"}));
    assert!(refused(both).contains("not both"));
}

#[test]
fn bad_values_are_refused_with_the_key_named() {
    assert!(refused(production(json!({"project_id": "a/b"}))).contains("project_id"));
    assert!(refused(production(json!({"service_account_email": "nobody"}))).contains("service_account_email"));
    assert!(refused(production(json!({"tenant_id": "a b"}))).contains("tenant_id"));
    assert!(refused(production(json!({"timeout_seconds": 0}))).contains("timeout_seconds"));
    assert!(refused(production(json!({"api_base": "http://identitytoolkit.example"}))).contains("api_base"));
    assert!(refused(production(json!({"token_uri": "ftp://127.0.0.1/token"}))).contains("token_uri"));
    assert!(refused(production(json!({"private_key": "not a key"}))).contains("key"));
    let emulator = json!({"project_id": PROJECT_ID, "service_account_email": SERVICE_ACCOUNT});
    let mut bad_host = emulator.clone();
    bad_host["emulator_host"] = json!("http://127.0.0.1:9099");
    assert!(refused(bad_host).contains("emulator_host"));
    let mut no_port = emulator.clone();
    no_port["emulator_host"] = json!("localhost");
    assert!(refused(no_port).contains("emulator_host"));
    let mut mixed = emulator;
    mixed["emulator_host"] = json!("127.0.0.1:9099");
    mixed["api_base"] = json!("https://identitytoolkit.googleapis.com");
    assert!(refused(mixed).contains("emulator_host"));
}

#[test]
fn a_google_key_file_is_read_and_must_match_the_email() {
    let (pem, _) = service_account_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    let file =
        json!({"type": "service_account", "client_email": SERVICE_ACCOUNT, "private_key": pem, "private_key_id": "k1"});
    std::fs::write(&path, file.to_string()).unwrap();
    let base =
        json!({"project_id": PROJECT_ID, "service_account_email": SERVICE_ACCOUNT, "service_account_file": path});
    FirebaseAdapter::new(settings(base.clone())).expect("key file accepted");

    let mut other = base.clone();
    other["service_account_email"] = json!("someone-else@demo-ssobridge.iam.gserviceaccount.com");
    assert!(refused(other).contains("belongs to"));

    std::fs::write(&path, "{ not json").unwrap();
    let detail = refused(base.clone());
    assert!(detail.contains("not a service account key file"), "{detail}");

    let mut missing = base;
    missing["service_account_file"] = json!(dir.path().join("absent.json"));
    assert!(refused(missing).contains("reading service_account_file"));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let (pem, _) = service_account_key();
    let key_body = pem.lines().nth(1).unwrap().to_owned();
    let settings = settings(production(json!({})));
    let shown = format!("{settings:?}");
    assert!(!shown.contains(&key_body) && shown.contains("[redacted]"), "{shown}");
    let adapter = FirebaseAdapter::new(settings).unwrap();
    let shown = format!("{adapter:?}");
    assert!(!shown.contains(&key_body) && !shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains(PROJECT_ID));
}
