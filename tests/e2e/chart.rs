//! The Helm chart, `deploy/helm/ssobridge`, checked without a cluster (none runs here).
//!
//! The chart is linted (`helm lint --strict`) and rendered (`helm template`) for several release
//! names and value sets, and every rendered manifest is validated against the API schemas, with
//! nothing fetched at test time:
//!
//! - `kubernetes-validate --strict` (PyPI, in `.venv`: `scripts/deps/python.sh`) checks every
//!   Kubernetes kind against the schemas of Kubernetes 1.30 and 1.37, unknown fields included;
//! - `tests/peers/validate-manifests.mjs` (the kubernetes-models packages, npm, `tests/peers`)
//!   checks every document, including the custom resources ServiceMonitor, PrometheusRule and
//!   HTTPRoute against the Prometheus Operator's and the Gateway API's schemas (types, required
//!   fields, enums, patterns; not unknown fields).
//!
//! Each rendered `ssobridge.toml`, with the Secret's documented keys, must pass the binary's
//! `check-config`; and the wiring that no schema sees is asserted: the Ingress and HTTPRoute
//! reach only the public Service, the ServiceMonitor only the operations Service, the
//! NetworkPolicy never opens the operations port to everyone.
//! helm comes from `scripts/deps/helm.sh`; a missing tool fails the test.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value;
use tokio::process::Command;

use crate::common::tempdir::TempDir;
use crate::topology::{check_config, deploy_dir, generate_key, program};

/// The Kubernetes versions whose schemas the manifests must satisfy: the oldest the chart
/// supports (the preStop sleep action is on by default from 1.30) and the newest known.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30", "1.37"];

/// Kinds that are not Kubernetes' own: kubernetes-validate has no schema for them, the
/// kubernetes-models validator has.
const CUSTOM_KINDS: [&str; 3] = ["ServiceMonitor", "PrometheusRule", "HTTPRoute"];

/// The Secret keys values.yaml documents, with stand-in values (the key is added per test).
const SECRET: [(&str, &str); 3] = [
    ("SSOBRIDGE_UPSTREAM__CLIENT_SECRET", "upstream-secret"),
    ("SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET", "auth0-prod-secret"),
    ("SSOBRIDGE_TOKENS__PAIRWISE_SALT", "salt"),
];

/// Release names: the chart's own name (the full name is then just `ssobridge`), a short one,
/// and one of the longest helm allows (53), whose object names must still fit 63 characters.
const RELEASES: [&str; 3] = ["ssobridge", "sso", "acme-identity-broker-production-eu-west-1-blue-green1"];

/// The value sets, as values files: (name, YAML).
const VALUE_SETS: [(&str, &str); 4] = [
    ("defaults", "existingSecret: sso-secrets\n"),
    (
        "ingress, ServiceMonitor, PrometheusRule, NetworkPolicy",
        r#"existingSecret: sso-secrets
ingress:
  enabled: true
  className: nginx
  annotations:
    cert-manager.io/cluster-issuer: letsencrypt
  tls:
    secretName: sso-tls
serviceMonitor:
  enabled: true
  labels:
    release: kube-prometheus-stack
prometheusRule:
  enabled: true
  extraGroups:
    - name: ssobridge-extra
      rules:
        - alert: SsobridgeNotScraped
          expr: absent(up{job=~".+-admin"} == 1)
          for: 5m
          labels:
            severity: critical
          annotations:
            summary: "no ssobridge pod answers /metrics in {{ $labels.namespace }}"
networkPolicy:
  enabled: true
  http:
    fromNamespaces: [ingress-nginx]
  admin:
    fromNamespaces: [monitoring]
  egress:
    redisTo:
      - podSelector:
          matchLabels:
            app.kubernetes.io/name: redis
"#,
    ),
    (
        "httpRoute",
        r#"existingSecret: sso-secrets
publicUrl: https://login.example.org
httpRoute:
  enabled: true
  parentRefs:
    - name: public
      namespace: gateway-system
      sectionName: https
"#,
    ),
    (
        "autoscaling",
        r#"existingSecret: sso-secrets
autoscaling:
  enabled: true
  minReplicas: 3
  maxReplicas: 9
podDisruptionBudget:
  minAvailable: 2
preStopSleepSeconds: 5
networkPolicy:
  enabled: false
"#,
    ),
];

/// Runs `helm` with `args` (`CHART` stands for the chart's directory); returns (success,
/// stdout, stderr).
async fn helm(args: &[&str]) -> (bool, String, String) {
    let chart = chart_dir();
    let output = Command::new(program("helm", &["/usr/local/bin"], "scripts/deps/helm.sh"))
        .args(args.iter().map(|a| if *a == "CHART" { chart.as_os_str() } else { a.as_ref() }))
        .output()
        .await
        .expect("run helm");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

fn chart_dir() -> PathBuf {
    deploy_dir().join("helm/ssobridge")
}

/// `helm template RELEASE` with `values` (YAML) in namespace `sso-system`; the manifests, or
/// helm's error.
async fn render(dir: &Path, release: &str, values: &str) -> Result<String, String> {
    let file = dir.join(format!("values-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&file, values).expect("write values");
    let file = file.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = helm(&["template", release, "CHART", "--namespace", "sso-system", "-f", &file]).await;
    if ok {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// The documents of `helm template` output.
fn documents(manifests: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifests)
        .map(|document| Value::deserialize(document).expect("helm template writes YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn kind_of(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or("")
}

fn name_of(document: &Value) -> &str {
    document["metadata"]["name"].as_str().unwrap_or("")
}

fn all<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| kind_of(d) == kind).collect()
}

fn one<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = all(documents, kind);
    assert_eq!(found.len(), 1, "one {kind}: {found:?}");
    found[0]
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// `kubernetes-validate --strict` of `file` against Kubernetes `version`: panics on any
/// failure; returns the kinds it had no schema for.
async fn validate_strict(file: &Path, version: &str) -> Vec<String> {
    let validator = crate::common::repo_root().join(".venv/bin/kubernetes-validate");
    assert!(
        validator.is_file(),
        "kubernetes-validate is not installed (scripts/deps/python.sh installs it into .venv; scripts/install-test-deps.sh runs it)"
    );
    let output = Command::new(&validator)
        .args(["--strict", "-k", version])
        .arg(file)
        .output()
        .await
        .expect("run kubernetes-validate");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !stdout.contains("ERROR"),
        "kubernetes-validate --strict -k {version} {}:\n{stdout}{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split("Couldn't find schema for kind ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// `tests/peers/validate-manifests.mjs` of `file`: one result per document.
async fn validate_models(file: &Path) -> Vec<Json> {
    let script = crate::common::peers_dir().join("validate-manifests.mjs");
    let output = Command::new("node").arg(&script).arg(file).output().await.expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {} (kubernetes-models: npm ci in tests/peers, scripts/install-test-deps.sh):\n{stdout}{}",
        script.display(),
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// A DNS-1035 label, as a Service name must be.
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_chart_lints_and_its_defaults_run_the_broker_as_documented() {
    let dir = TempDir::new("chart");
    for (set, values) in VALUE_SETS {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).expect("write values");
        let (ok, stdout, stderr) = helm(&["lint", "--strict", "CHART", "-f", &file.to_string_lossy()]).await;
        assert!(ok, "helm lint --strict with {set}:\n{stdout}\n{stderr}");
    }

    // The Secret is required: the chart never holds secrets itself.
    let (ok, _, stderr) = helm(&["template", "sso", "CHART"]).await;
    assert!(!ok && stderr.contains("existingSecret"), "{stderr}");

    let docs = documents(&render(dir.path(), "sso", VALUE_SETS[0].1).await.expect("render"));
    let mut found: Vec<&str> = docs.iter().map(kind_of).collect();
    found.sort_unstable();
    assert_eq!(
        found,
        ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"]
    );
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["enableServiceLinks"], false, "no service-link variables in the pods");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "sso-secrets");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/etc/ssobridge");
    assert!(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"].is_string());
    let args: Vec<&str> = container["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
    assert_eq!(args, ["serve", "--config", "/etc/ssobridge/ssobridge.toml"]);
    let ports: Vec<(&str, u64)> = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or(""), p["containerPort"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(ports, [("http", 8080), ("admin", 9090)]);
    let admin_listen =
        container["env"].as_sequence().expect("env").iter().find(|e| e["name"] == "SSOBRIDGE_ADMIN__LISTEN");
    assert_eq!(admin_listen.map(|e| &e["value"]), Some(&Value::from("0.0.0.0:9090")));
    // Probes: all on the operations port; liveness and startup on /healthz, never /readyz.
    for (probe, path) in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // The ConfigMap's ssobridge.toml, with the Secret's documented keys as environment, is
    // accepted by the binary; values.yaml documents each key.
    let toml = one(&docs, "ConfigMap")["data"]["ssobridge.toml"].as_str().expect("ssobridge.toml").to_owned();
    assert!(toml.contains("public_url = \"https://sso.example.com\""), "{toml}");
    let key = std::fs::read_to_string(generate_key(dir.path()).await).expect("key");
    let (ok, output) = check_config_text(dir.path(), &toml, &key).await;
    assert!(ok, "the chart's ssobridge.toml with its Secret:\n{toml}\n{output}");
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    for key in SECRET.iter().map(|(k, _)| *k).chain(["SSOBRIDGE_SIGNING__KEY_PEM"]) {
        let documented =
            if key.starts_with("SSOBRIDGE_CLIENTS__") { "SSOBRIDGE_CLIENTS__<CLIENT_ID>__CLIENT_SECRET" } else { key };
        assert!(values.contains(documented), "values.yaml documents {documented}");
    }
}

/// check-config of `toml` with the Secret's keys and `key` (PEM) as the only environment.
async fn check_config_text(dir: &Path, toml: &str, key: &str) -> (bool, String) {
    let config = dir.join(format!("ssobridge-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&config, toml).expect("write config");
    let mut env: Vec<(String, String)> = SECRET.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("SSOBRIDGE_SIGNING__KEY_PEM".to_owned(), key.to_owned()));
    check_config(&config, &env).await
}

/// Every release name with every value set: the manifests validate against the Kubernetes
/// schemas (and the custom resources' own), their config passes check-config, and what the
/// schemas cannot see is wired as intended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_release_and_value_set_renders_manifests_that_validate() {
    let dir = TempDir::new("chart-sets");
    let key = std::fs::read_to_string(generate_key(dir.path()).await).expect("key");
    for release in RELEASES {
        assert!(release.len() <= 53, "helm's limit");
        for (set, values) in VALUE_SETS {
            let what = format!("release {release}, {set}");
            let manifests = render(dir.path(), release, values).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let file = dir.path().join(format!("{release}-{}.yaml", set.replace([',', ' '], "_")));
            std::fs::write(&file, &manifests).expect("write manifests");
            let docs = documents(&manifests);

            // The schemas: every Kubernetes kind strictly, for both versions; the custom
            // resources (and everything else again) by their own schemas.
            for version in KUBERNETES_VERSIONS {
                let unknown = validate_strict(&file, version).await;
                assert!(
                    unknown.iter().all(|k| CUSTOM_KINDS.contains(&k.as_str())),
                    "{what}: no schema for {unknown:?}"
                );
            }
            let results = validate_models(&file).await;
            assert_eq!(results.len(), docs.len(), "{what}: every document validated: {results:?}");
            assert!(results.iter().all(|r| r["ok"] == true), "{what}: {results:#?}");

            check_wiring(&what, release, values, &docs);
            let toml = one(&docs, "ConfigMap")["data"]["ssobridge.toml"].as_str().expect("toml").to_owned();
            let (ok, output) = check_config_text(dir.path(), &toml, &key).await;
            assert!(ok, "{what}: check-config of the rendered ssobridge.toml:\n{toml}\n{output}");
        }
    }
}

/// What the schemas cannot check: names, and which Service each route, monitor and policy reaches.
fn check_wiring(what: &str, release: &str, values: &str, docs: &[Value]) {
    for doc in docs {
        let name = name_of(doc);
        assert!(is_dns_label(name), "{what}: {} name {name:?} is not a DNS label of at most 63", kind_of(doc));
        assert_eq!(doc["metadata"]["labels"]["app.kubernetes.io/instance"], release, "{what}: {name}");
    }
    let values: Value = serde_yaml::from_str(values).expect("values");
    let deployment = one(docs, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(deployment["spec"]["template"]["spec"]["enableServiceLinks"], false, "{what}");

    // Two Services: the public one (port http only) and the operations one (port admin only).
    let services = all(docs, "Service");
    let port_names = |s: &Value| -> Vec<String> {
        s["spec"]["ports"]
            .as_sequence()
            .map_or(Vec::new(), |ports| ports.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
    };
    let public = services.iter().find(|s| port_names(s) == ["http"]).unwrap_or_else(|| panic!("{what}: public"));
    let admin = services.iter().find(|s| port_names(s) == ["admin"]).unwrap_or_else(|| panic!("{what}: admin"));
    assert_eq!(services.len(), 2, "{what}");
    assert_eq!(admin["spec"]["type"], "ClusterIP", "{what}: the operations Service stays inside the cluster");
    assert_eq!(admin["spec"]["ports"][0]["targetPort"], "admin");
    assert!(name_of(admin).ends_with("-admin"), "{what}");
    for service in [public, admin] {
        assert!(selects(&service["spec"]["selector"], pod_labels), "{what}: {} selects the pods", name_of(service));
    }
    let public_name = name_of(public);
    let host = values["publicUrl"].as_str().unwrap_or("https://sso.example.com").trim_start_matches("https://");

    for ingress in all(docs, "Ingress") {
        let rules = ingress["spec"]["rules"].as_sequence().expect("rules");
        for rule in rules {
            assert_eq!(rule["host"], host, "{what}");
            for path in rule["http"]["paths"].as_sequence().expect("paths") {
                let backend = &path["backend"]["service"];
                assert_eq!(backend["name"], public_name, "{what}: the Ingress reaches the public Service only");
                assert_eq!(backend["port"]["name"], "http", "{what}");
            }
        }
        assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], host, "{what}");
    }
    for route in all(docs, "HTTPRoute") {
        assert_eq!(route["spec"]["hostnames"][0], host, "{what}");
        for rule in route["spec"]["rules"].as_sequence().expect("rules") {
            for backend in rule["backendRefs"].as_sequence().expect("backendRefs") {
                assert_eq!(backend["name"], public_name, "{what}: the HTTPRoute reaches the public Service only");
                assert_eq!(backend["port"], public["spec"]["ports"][0]["port"], "{what}");
            }
        }
    }
    for monitor in all(docs, "ServiceMonitor") {
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        assert!(
            selects(selector, &admin["metadata"]["labels"]),
            "{what}: the ServiceMonitor selects the operations Service"
        );
        assert!(!selects(selector, &public["metadata"]["labels"]), "{what}: and not the public one");
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
        assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    }
    for rule in all(docs, "PrometheusRule") {
        // Rule templates are Prometheus's: helm must not have touched them.
        let text = serde_yaml::to_string(rule).expect("yaml");
        assert!(text.contains("{{ $labels.namespace }}"), "{what}: {text}");
    }
    for policy in all(docs, "NetworkPolicy") {
        assert!(
            selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels),
            "{what}: the policy covers the pods"
        );
        let rules = policy["spec"]["ingress"].as_sequence().expect("ingress rules");
        let admin_rules: Vec<&Value> = rules
            .iter()
            .filter(|r| r["ports"].as_sequence().is_some_and(|p| p.iter().any(|p| p["port"] == "admin")))
            .collect();
        assert!(!admin_rules.is_empty(), "{what}: the operations port is reachable (Prometheus, operators)");
        for rule in admin_rules {
            assert!(
                rule["from"].as_sequence().is_some_and(|from| !from.is_empty()),
                "{what}: the operations port is never open to every source"
            );
        }
    }
    // Behind an Ingress or Gateway, the limits count the browser's address.
    if !all(docs, "Ingress").is_empty() || !all(docs, "HTTPRoute").is_empty() {
        let toml = one(docs, "ConfigMap")["data"]["ssobridge.toml"].as_str().expect("toml");
        let config: toml::Table = toml.parse().expect("TOML");
        assert_eq!(config["rate_limits"]["trust_forwarded_for"].as_bool(), Some(true), "{what}");
    }
    // With an HPA, the Deployment leaves the replica count to it.
    if !all(docs, "HorizontalPodAutoscaler").is_empty() {
        assert!(deployment["spec"]["replicas"].is_null(), "{what}: no fixed replica count beside an HPA");
        assert_eq!(one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"], name_of(deployment));
    }
}

/// Value sets that would deploy something broken are refused at render time, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_refuses_value_sets_that_cannot_work() {
    let dir = TempDir::new("chart-refusals");
    let config_without_xff = r#"config: |
  [store]
  url = "redis://redis:6379/0"
  [upstream]
  issuer = "https://your-environment.scalekit.dev"
  client_id = "skc_replace_me"
"#;
    let cases = [
        (format!("existingSecret: s\ningress:\n  enabled: true\n{config_without_xff}"), "trust_forwarded_for = true"),
        (
            format!(
                "existingSecret: s\nhttpRoute:\n  enabled: true\n  parentRefs: [{{name: gw}}]\n{config_without_xff}"
            ),
            "trust_forwarded_for = true",
        ),
        ("existingSecret: s\nhttpRoute:\n  enabled: true\n".to_owned(), "httpRoute.parentRefs"),
        ("existingSecret: s\npublicUrl: https://example.com/sso\ningress:\n  enabled: true\n".to_owned(), "has a path"),
        (
            "existingSecret: s\nserviceMonitor:\n  enabled: true\nadminService:\n  enabled: false\n".to_owned(),
            "adminService.enabled",
        ),
    ];
    // values.schema.json: a misspelt or mistyped value fails instead of being ignored.
    let cases = cases.into_iter().chain([
        ("existingSecret: s\ningres:\n  enabled: true\n".to_owned(), "additional properties 'ingres' not allowed"),
        ("existingSecret: s\nserviceMonitor:\n  interval: 30\n".to_owned(), "/serviceMonitor/interval"),
        ("existingSecret: s\nnetworkPolicy:\n  http:\n    fromNamespace: [x]\n".to_owned(), "fromNamespace"),
    ]);
    for (values, message) in cases {
        let refused = render(dir.path(), "sso", &values).await.expect_err(&values);
        assert!(refused.contains(message), "{values}\n-> {refused}");
    }
    // The same forwarded-for setting given as an override instead is enough.
    let values = format!(
        "existingSecret: s\ningress:\n  enabled: true\nextraEnv:\n  - name: SSOBRIDGE_RATE_LIMITS__TRUST_FORWARDED_FOR\n    value: \"true\"\n{config_without_xff}"
    );
    render(dir.path(), "sso", &values).await.expect("the override counts");
}

/// The PrometheusRule carries the alert rules kept with the deployment files: the chart ships
/// `deploy/prometheus/alerts.yaml` as `files/alerts.yaml`, byte for byte, and renders its groups
/// as they are (the `{{ $labels }}` templates left to Prometheus), then `extraGroups`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_rule_carries_the_deployment_alert_rules() {
    let dir = TempDir::new("chart-alerts");
    let alerts = deploy_dir().join("prometheus/alerts.yaml");
    let shipped = chart_dir().join("files/alerts.yaml");
    let text = std::fs::read_to_string(&alerts).unwrap_or_else(|e| panic!("{}: {e}", alerts.display()));
    let in_chart = std::fs::read_to_string(&shipped)
        .unwrap_or_else(|_| panic!("the chart ships {} as {}", alerts.display(), shipped.display()));
    assert_eq!(in_chart, text, "{} is a copy of {}", shipped.display(), alerts.display());
    let file: Value = serde_yaml::from_str(&text).expect("alerts.yaml is YAML");
    let groups = file["groups"].as_sequence().expect("alerts.yaml has groups").clone();
    assert!(!groups.is_empty(), "alerts.yaml has no group");

    let manifests =
        render(dir.path(), "sso", "existingSecret: s\nprometheusRule:\n  enabled: true\n").await.expect("render");
    let rule = documents(&manifests).into_iter().find(|d| kind_of(d) == "PrometheusRule").expect("a PrometheusRule");
    assert_eq!(rule["spec"]["groups"], Value::Sequence(groups.clone()), "the PrometheusRule holds the file's groups");
    let summary = |rule: &Value| rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"].clone();
    assert!(
        summary(&rule).as_str().is_some_and(|s| s.contains("{{ $labels.")),
        "Prometheus's templates are not expanded by helm: {:?}",
        summary(&rule)
    );

    let extra = "existingSecret: s\nprometheusRule:\n  enabled: true\n  extraGroups:\n    - name: mine\n      rules:\n        - alert: Mine\n          expr: vector(1)\n";
    let manifests = render(dir.path(), "sso", extra).await.expect("render with extraGroups");
    let rule = documents(&manifests).into_iter().find(|d| kind_of(d) == "PrometheusRule").expect("a PrometheusRule");
    let rendered = rule["spec"]["groups"].as_sequence().expect("groups");
    assert_eq!(rendered.len(), groups.len() + 1, "the file's groups, then extraGroups");
    assert_eq!(rendered[..groups.len()], groups[..]);
    assert_eq!(rendered[groups.len()]["name"], "mine");
}
