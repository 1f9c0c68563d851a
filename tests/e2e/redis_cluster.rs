//! The store on a real Redis Cluster: six `redis-server` processes (three primaries, three
//! replicas) on loopback, made a cluster by `redis-cli --cluster create`. The conformance suite
//! runs against it; then two brokers share it for full logins, list what the admin API and the
//! config file stored (SCAN on the slot of a collection), spread in-flight keys over the
//! primaries, and keep working after a primary is killed and its replica promoted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    rp, wait_until, BrokerSocket, Redis, RedisOptions, TestClient, ADMIN_READ_TOKEN, ADMIN_WRITE_TOKEN, AUTH0_CLIENT,
    COGNITO_CLIENT,
};
use serde_json::{json, Value};
use ssobridge::config::{StoreConfig, StoreMode};
use ssobridge::store::{conformance, RedisStore, Store};
use tokio::process::Command;

/// A failover is detected after cluster-node-timeout and done within about twice that.
const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// One line of `CLUSTER NODES` as a node sees it.
#[derive(Debug)]
struct View {
    id: String,
    port: u16,
    primary: bool,
    failed: bool,
    primary_id: String,
    slots: Vec<(u16, u16)>,
}

struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    async fn start() -> Cluster {
        let node = RedisOptions { cluster_node_timeout: Some(NODE_TIMEOUT), ..RedisOptions::default() };
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(Redis::start_with(node.clone()).await);
        }
        let cluster = Cluster { nodes };
        let addresses: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .expect("run redis-cli (redis-tools)");
        assert!(output.status.success(), "cluster create: {}", String::from_utf8_lossy(&output.stdout));
        let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
        cluster.wait_until_ok(&ports).await;
        // Replicas in sync, so that a failover has a replica to promote.
        wait_until("every replica in sync", Duration::from_secs(30), || async {
            for port in &ports {
                let info = cli(*port, &["info", "replication"]).await;
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    return false;
                }
            }
            true
        })
        .await;
        cluster
    }

    /// Seed node URLs for `store.url`: two primaries' worth is plenty, the client finds the rest.
    fn seeds(&self) -> String {
        self.nodes.iter().take(3).map(|n| format!("redis://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    async fn wait_until_ok(&self, ports: &[u16]) {
        wait_until("cluster_state:ok on every node", Duration::from_secs(30), || async {
            for port in ports {
                if !cli(*port, &["cluster", "info"]).await.contains("cluster_state:ok") {
                    return false;
                }
            }
            true
        })
        .await;
    }

    async fn view(&self, port: u16) -> Vec<View> {
        cli(port, &["cluster", "nodes"])
            .await
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = fields.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                let flags = fields.get(2)?;
                let slots = fields
                    .iter()
                    .skip(8)
                    .filter_map(|range| {
                        let (a, b) = range.split_once('-').unwrap_or((range, range));
                        Some((a.parse().ok()?, b.parse().ok()?))
                    })
                    .collect();
                Some(View {
                    id: fields[0].to_owned(),
                    port,
                    primary: flags.contains("master"),
                    failed: flags.contains("fail"),
                    primary_id: fields.get(3)?.to_string(),
                    slots,
                })
            })
            .collect()
    }

    /// The port of the live primary serving `slot`, as the node on `asking` sees it.
    async fn primary_of(&self, slot: u16, asking: u16) -> Option<u16> {
        self.view(asking)
            .await
            .into_iter()
            .find(|v| v.primary && !v.failed && v.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|v| v.port)
    }

    async fn primaries(&self) -> Vec<u16> {
        self.view(self.nodes[0].port).await.into_iter().filter(|v| v.primary && !v.failed).map(|v| v.port).collect()
    }

    /// Kills the node on `port` (SIGKILL, by its PID).
    async fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("node");
        node.kill().await;
    }
}

/// `redis-cli -p PORT ARGS...`'s output (empty when the node does not answer).
async fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output().await;
    output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// A replication offset from `INFO replication`: `master_repl_offset` on a primary (how far
/// it has written), `slave_repl_offset` on a replica (how far it has applied).
async fn replication_offset(port: u16, field: &str) -> Option<u64> {
    let info = cli(port, &["info", "replication"]).await;
    info.lines().find_map(|line| line.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
}

fn cluster_config(seeds: &str, prefix: &str) -> StoreConfig {
    StoreConfig { url: seeds.to_owned(), key_prefix: prefix.to_owned(), mode: StoreMode::Cluster, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_conforms() {
    let cluster = Cluster::start().await;
    let store = RedisStore::from_config(&cluster_config(&cluster.seeds(), "conformance:")).await.expect("connect");
    assert!(store.is_cluster());
    conformance::run(Arc::new(store.clone()), "suite").await;

    // A whole collection comes back from a cluster, every time: SCAN goes to the slot's primary
    // (sent to any node it would see a third of the keys, or none).
    for i in 0..40 {
        store.set(&format!("route:r{i}.example"), b"{}").await.expect("set");
    }
    for _ in 0..10 {
        assert_eq!(store.scan_prefix("route:r").await.expect("scan").len(), 40);
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics in this process (a handler panicking would otherwise show only as a dropped
/// connection).
fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The broker's panics only: other tests of this process assert by panicking.
            if info.location().is_some_and(|l| l.file().starts_with("src/")) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

async fn admin(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let token = if method == reqwest::Method::GET { ADMIN_READ_TOKEN } else { ADMIN_WRITE_TOKEN };
    let mut request = crate::common::http().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// The `field` of every item an admin list returns.
async fn listed(broker: &str, what: &str, field: &str) -> Vec<String> {
    let (status, body) = admin(reqwest::Method::GET, format!("{broker}/admin/{what}?limit=100"), None).await;
    assert_eq!(status, 200, "{what}: {body}");
    body["items"].as_array().expect("items").iter().filter_map(|i| i[field].as_str().map(str::to_owned)).collect()
}

fn login_input(broker: &str, client: TestClient<'_>, mode: &str, hint: &str) -> Value {
    json!({
        "issuer": broker, "client_id": client.client_id, "client_secret": client.secret, "redirect_uri": client.redirect_uri,
        "mode": mode, "params": {"login_hint": hint},
    })
}

/// Every key under `prefix` on the node on `port` (the node's own keys only).
async fn node_keys(port: u16, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect to a node");
    redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut connection).await.expect("keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_through_two_brokers_on_a_cluster_survive_a_primary_failover() {
    count_panics();
    let mut cluster = Cluster::start().await;
    let a_socket = BrokerSocket::bind().await;
    let b_socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[a_socket.callback(), b_socket.callback()]).await;
    let pem = ssobridge::tokens::generate_rsa_pem().expect("pem");
    let key = || ssobridge::tokens::SigningKey::from_pem(&pem).expect("key");
    let toml = |url: &str| {
        crate::common::broker_toml(url, &cluster.seeds(), "cl:", &upstream.issuer)
            .replace("[store]\n", "[store]\nmode = \"cluster\"\n")
    };
    let (a_toml, b_toml) = (toml(&a_socket.url), toml(&b_socket.url));
    let a = a_socket.serve_with_admin(&a_toml, key()).await;
    let b = b_socket.serve_with_admin(&b_toml, key()).await;
    assert_eq!(a.state.store.backend_name(), "redis-cluster");

    // Full logins on both instances, with the config clients.
    let result = rp(&login_input(&a.url, AUTH0_CLIENT, "auth0", "alice@acme.test")).await;
    assert_eq!(result["ok"], true, "{result}");
    let result = rp(&login_input(&b.url, COGNITO_CLIENT, "cognito", "bob@globex.test")).await;
    assert_eq!(result["ok"], true, "{result}");

    // A client and a route made through A's admin API are listed by B (SCAN on one slot) and
    // work for a login on B.
    let redirect = "https://app.example.com/callback";
    let (status, created) = admin(
        reqwest::Method::POST,
        format!("{}/admin/clients", a.url),
        Some(json!({"client_id": "api-made", "name": "API Made", "redirect_uris": [redirect]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().expect("secret").to_owned();
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("{}/admin/routes", a.url),
        Some(json!({"domain": "initech.test", "organization_id": "org_acme", "connection_id": "conn_acme1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut clients = listed(&b.url, "clients", "client_id").await;
    clients.sort();
    assert_eq!(clients, ["api-made", "auth0-test", "cognito-test"], "config and admin-made clients, from B");
    assert_eq!(listed(&b.url, "routes", "domain").await, ["initech.test"]);
    let api_client = TestClient { client_id: "api-made", secret: &secret, redirect_uri: redirect };
    let result = rp(&login_input(&b.url, api_client, "auth0", "peter@initech.test")).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(upstream.requests().await.pop().expect("request")["connection_id"], "conn_acme1", "routed");

    // In-flight keys spread over the primaries; each collection sits on one node.
    let primaries = cluster.primaries().await;
    assert_eq!(primaries.len(), 3);
    let mut holding = 0;
    let mut collection_nodes = std::collections::HashMap::<&str, Vec<u16>>::new();
    for port in &primaries {
        let keys = node_keys(*port, "cl:").await;
        eprintln!("primary {port}: {} keys", keys.len());
        holding += usize::from(keys.iter().any(|k| !k.starts_with("cl:{")));
        for tag in ["cl:{client}:", "cl:{route}:"] {
            if keys.iter().any(|k| k.starts_with(tag)) {
                collection_nodes.entry(tag).or_default().push(*port);
            }
        }
    }
    assert!(holding >= 2, "flows, codes and tokens spread over more than one primary");
    assert_eq!(collection_nodes.get("cl:{client}:").map(Vec::len), Some(1), "clients on one node");
    assert_eq!(collection_nodes.get("cl:{route}:").map(Vec::len), Some(1), "routes on one node");

    // Kill the primary holding the clients: every login needs them.
    let slot = cli(primaries[0], &["cluster", "keyslot", "cl:{client}:x"]).await.trim().parse::<u16>().expect("slot");
    let victim = cluster.primary_of(slot, primaries[0]).await.expect("a primary for the clients' slot");
    let survivor = *primaries.iter().find(|p| **p != victim).expect("survivor");
    let victim_id = cluster.view(survivor).await.into_iter().find(|v| v.port == victim).expect("victim").id;
    let replica = cluster
        .view(survivor)
        .await
        .into_iter()
        .find(|v| v.primary_id == victim_id)
        .map(|v| v.port)
        .expect("the victim's replica");
    // Every write is on the replica before the primary goes (replication is asynchronous).
    let written = replication_offset(victim, "master_repl_offset").await.expect("the primary's offset");
    wait_until("the replica has every write", Duration::from_secs(10), || async {
        replication_offset(replica, "slave_repl_offset").await.is_some_and(|offset| offset >= written)
    })
    .await;
    let killed = Instant::now();
    cluster.kill(victim).await;

    // During the failover: an answer, not a crash. A login either works (it may not touch the
    // dead node's slots after all) or is refused as temporarily unavailable.
    let during = rp(&login_input(&b.url, AUTH0_CLIENT, "auth0", "alice@acme.test")).await;
    eprintln!("a login during the failover: {during}");
    if during["ok"] != true {
        assert!(
            during["error"] == "temporarily_unavailable" || during["status"] == 503,
            "a login during a failover is refused as temporarily unavailable: {during}"
        );
    }
    // A listing during the failover is complete or refused, never short (an empty list would
    // read as "no clients").
    let (status, body) = admin(reqwest::Method::GET, format!("{}/admin/clients?limit=100", a.url), None).await;
    eprintln!("clients listed during the failover: {status}");
    if status == 200 {
        assert_eq!(body["items"].as_array().map(Vec::len), Some(3), "{body}");
    }
    let health = crate::common::http().get(format!("{}/healthz", b.url)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);

    // The replica is promoted...
    let live: Vec<u16> = cluster.nodes.iter().map(|n| n.port).filter(|p| *p != victim).collect();
    wait_until("the replica promoted", Duration::from_secs(30), || async {
        cluster.primary_of(slot, survivor).await == Some(replica)
    })
    .await;
    cluster.wait_until_ok(&live).await;
    eprintln!("failover: replica {replica} serves the slot {:?} after the kill", killed.elapsed());

    // ... and logins work again (the client follows the new topology by itself), on both
    // instances, with everything the dead primary held.
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = rp(&login_input(&a.url, AUTH0_CLIENT, "auth0", "alice@acme.test")).await;
        if result["ok"] == true {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no login within 20 s of the failover: {result}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("logins work again {:?} after the kill ({attempts} attempt(s) after promotion)", killed.elapsed());
    let result = rp(&login_input(&b.url, api_client, "auth0", "peter@initech.test")).await;
    assert_eq!(result["ok"], true, "the admin-made client survived on the replica: {result}");
    let mut clients = listed(&a.url, "clients", "client_id").await;
    clients.sort();
    assert_eq!(clients, ["api-made", "auth0-test", "cognito-test"], "listed from the promoted replica");
    // Readiness comes from the background store check (every 2 s), which may still hold what
    // it saw during the failover.
    wait_until("ready again after the failover", Duration::from_secs(10), || async {
        let ready = crate::common::http().get(format!("{}/readyz", a.url)).send().await.expect("readyz");
        ready.status() == 200
    })
    .await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "nothing panicked");
}
