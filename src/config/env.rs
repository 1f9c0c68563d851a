//! The environment overlay: `SSOBRIDGE_<SECTION>__<KEY>` variables written onto the file's
//! table before it is typed. By hand rather than a config crate, because clients are
//! addressed by id (`SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET`) as well as by index, and
//! Kubernetes' service-link variables must be told from typos.

use std::net::IpAddr;

use super::ConfigError;

pub const ENV_PREFIX: &str = "SSOBRIDGE_";
/// `SSOBRIDGE_` variables that are not config keys: the log filter and the environment name.
const NOT_CONFIG: &[&str] = &["SSOBRIDGE_LOG", "SSOBRIDGE_ENV"];

/// Applies `SSOBRIDGE_A__B__C=value` onto `table["a"]["b"]["c"]`. In `clients` the second part
/// is either an index or a client_id (`-` written as `_`, any case): `SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET`.
/// Kubernetes' service links ([`is_service_link`]) are left out with a warning each; their
/// names are returned. Any other unknown name is refused later, by the typed config.
pub(super) fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_CONFIG.contains(&k.as_str())).collect();
    vars.sort();
    let mut ignored = Vec::new();
    for (name, value) in vars {
        if is_service_link(&name, &value) {
            // The name only: the value is an address, but a warning line never carries values.
            tracing::warn!(variable = %name, "ignored: a Kubernetes service link variable, not a config key");
            ignored.push(name);
            continue;
        }
        let path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::one(name, "malformed variable name"));
        }
        set_path(table, &path, &value).map_err(|message| ConfigError::one(name.clone(), message))?;
    }
    Ok(ignored)
}

/// Whether `name=value` is one of the variables the kubelet gives every container for each
/// Service of its namespace (unless the pod sets `enableServiceLinks: false`): a Service
/// `ssobridge-redis-master` with port 6379 named `redis` yields
///
/// ```text
/// SSOBRIDGE_REDIS_MASTER_SERVICE_HOST=10.0.0.11
/// SSOBRIDGE_REDIS_MASTER_SERVICE_PORT=6379
/// SSOBRIDGE_REDIS_MASTER_SERVICE_PORT_REDIS=6379              (one per named port)
/// SSOBRIDGE_REDIS_MASTER_PORT=tcp://10.0.0.11:6379            (the first port; Docker-link style)
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP=tcp://10.0.0.11:6379   (and per port:)
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PROTO=tcp
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PORT=6379
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR=10.0.0.11
/// ```
///
/// (kubelet `pkg/kubelet/envvars`: the name upper-cased, `-` and `.` written `_`; Docker's
/// legacy links have the same shapes.) So a Service named `ssobridge…` (the release's own, or
/// a Redis installed beside it) would otherwise stop `serve` as unknown keys. A config key
/// always has `__` between its parts and a service link never does (a Service name is a DNS
/// label), so only single-part names are considered, and the value must have the shape the
/// kubelet writes: a typo such as `SSOBRIDGE_UPSTREAM__CLIENT_SECRT` is still refused.
fn is_service_link(name: &str, value: &str) -> bool {
    let Some(rest) = name.strip_prefix("SSOBRIDGE") else { return false };
    if name.contains("__") || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return false;
    }
    let is_port = |s: &str| s.parse::<u16>().is_ok();
    let is_ip = |s: &str| s.parse::<IpAddr>().is_ok();
    let is_proto = |s: &str| matches!(s, "TCP" | "UDP" | "SCTP");
    // `tcp://10.0.0.11:6379` (an IPv6 cluster IP is written unbracketed: `tcp://fd00::1:6379`).
    let is_link_url = |v: &str| {
        v.split_once("://").is_some_and(|(proto, addr)| {
            is_proto(&proto.to_ascii_uppercase())
                && addr.rsplit_once(':').is_some_and(|(ip, port)| is_ip(ip.trim_matches(['[', ']'])) && is_port(port))
        })
    };
    // `rest` is "" for a Service named exactly `ssobridge`, else `_REDIS_MASTER`… plus the suffix.
    if rest.ends_with("_SERVICE_HOST") {
        return is_ip(value);
    }
    if rest.ends_with("_SERVICE_PORT") || rest.contains("_SERVICE_PORT_") {
        return is_port(value);
    }
    if rest.ends_with("_PORT") && is_link_url(value) {
        return true;
    }
    // `…_PORT_<port>_<PROTO>` and its `_PROTO`, `_PORT`, `_ADDR`.
    let parts: Vec<&str> = rest.split('_').collect();
    let Some(at) = parts.windows(3).rposition(|w| w[0] == "PORT" && is_port(w[1]) && is_proto(w[2])) else {
        return false;
    };
    match &parts[at + 3..] {
        [] => is_link_url(value),
        ["PROTO"] => is_proto(&value.to_ascii_uppercase()),
        ["PORT"] => is_port(value),
        ["ADDR"] => is_ip(value),
        _ => false,
    }
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty path")?;
    if rest.is_empty() {
        let value = typed_like(table.get(first).or(schema_hint(first).as_ref()), raw)?;
        table.insert(first.clone(), value);
        return Ok(());
    }
    if first == "clients" {
        let clients = table
            .get_mut("clients")
            .and_then(toml::Value::as_array_mut)
            .ok_or("no [[clients]] entries in the file to override")?;
        let (selector, rest) = rest.split_first().ok_or("name a client")?;
        let entry = match selector.parse::<usize>() {
            Ok(i) => clients.get_mut(i),
            Err(_) => clients.iter_mut().find(|c| {
                c.get("client_id")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|id| id.replace('-', "_").eq_ignore_ascii_case(selector))
            }),
        };
        let entry = entry.and_then(toml::Value::as_table_mut).ok_or_else(|| format!("no client {selector}"))?;
        return set_path(entry, rest, raw);
    }
    let child = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let child = child.as_table_mut().ok_or_else(|| format!("{first} is not a section"))?;
    set_path(child, rest, raw)
}

/// The type of a key the file does not set, so that `SSOBRIDGE_TOKENS__CODE_TTL_SECONDS=30`
/// works without a `[tokens]` section. Everything else is a string.
fn schema_hint(key: &str) -> Option<toml::Value> {
    if key.ends_with("_seconds")
        || key.ends_with("_hours")
        || key.ends_with("_per_minute")
        || key.starts_with("pending_flows_")
        || key == "max_events"
    {
        Some(toml::Value::Integer(0))
    } else if matches!(
        key,
        "require_pkce"
            | "trust_forwarded_for"
            | "include_subdomains"
            | "allow_private_networks"
            | "ops_on_public_listener"
            | "lookup_on_miss"
            | "include_email"
    ) {
        Some(toml::Value::Boolean(false))
    } else if matches!(key, "redirect_uris" | "scopes" | "allowed_algorithms" | "drop" | "idp_initiated_issuers") {
        Some(toml::Value::Array(Vec::new()))
    } else {
        None
    }
}

/// Parses an environment string as the type the file has (or a string when the file has none).
fn typed_like(existing: Option<&toml::Value>, raw: &str) -> Result<toml::Value, String> {
    match existing {
        Some(toml::Value::Integer(_)) => {
            raw.trim().parse().map(toml::Value::Integer).map_err(|_| "expected an integer".to_owned())
        }
        Some(toml::Value::Boolean(_)) => {
            raw.trim().parse().map(toml::Value::Boolean).map_err(|_| "expected true or false".to_owned())
        }
        Some(toml::Value::Array(_)) => {
            if raw.trim_start().starts_with('[') {
                let parsed: toml::Table =
                    format!("v = {raw}").parse().map_err(|_| "expected a TOML array".to_owned())?;
                parsed.get("v").cloned().ok_or_else(|| "expected a TOML array".to_owned())
            } else {
                Ok(toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ))
            }
        }
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}
