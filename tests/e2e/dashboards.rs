//! The Grafana dashboard (`deploy/grafana/ssobridge.json`) and the alert rules
//! (`deploy/prometheus/alerts.yaml`), checked with Prometheus's own tool and against the metrics
//! the broker exports, without a Prometheus or a Grafana running:
//!
//! - `promtool check rules` of the rules, and `promtool test rules` of their unit tests
//!   (`deploy/prometheus/alerts.test.yaml`), in which every alert fires on a broken series and
//!   stays quiet on the healthy ones beside it;
//! - the dashboard is a Grafana dashboard (schema 39 or later, the template variables it is
//!   used through, a data source and queries on every panel, panels that do not overlap), and
//!   every query in it is PromQL that promtool accepts (written as recording rules);
//! - every metric, label and label value the dashboard and the alerts name is in a live
//!   `/metrics` ([`live_scrape`]: `ssobridge demo` after a login that succeeded, one that failed,
//!   a key rotation and a 429), the metrics contract of issue 17; the outcome labels the alerts
//!   watch exist at zero before anything happened (an error ratio reads 0, not nothing).
//!
//! promtool comes from Debian's `prometheus` package (`scripts/deps/prometheus.sh`); a missing
//! one fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value as Json};
use serde_yaml::Value;

use crate::common::tempdir::TempDir;
use crate::topology::{deploy_dir, program};

/// Series Prometheus makes itself for every target: `up` (1 when the scrape succeeded).
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Labels Prometheus adds to every series of a target: `job` and `instance` always, `namespace`
/// from the chart's ServiceMonitor (Prometheus Operator).
const TARGET_LABELS: &[&str] = &["job", "instance", "namespace"];

/// What queries may name: each series name with its label names, and every value each label
/// has: read from a `/metrics` scrape ([`scraped`]).
struct Catalogue {
    series: BTreeMap<String, BTreeSet<String>>,
    values: BTreeMap<(String, String), BTreeSet<String>>,
}

/// The catalogue of a Prometheus text exposition (format 0.0.4): every sample line's series
/// name, label names and label values, with what Prometheus adds.
fn scraped(text: &str) -> Catalogue {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels = series.entry(name.to_owned()).or_default();
        labels.extend(TARGET_LABELS.iter().map(|l| (*l).to_owned()));
        let Some(rest) = line[name_end..].strip_prefix('{') else { continue };
        // label="value" pairs; values escape \, \" and \n.
        let mut chars = rest.chars().peekable();
        loop {
            let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let label = label.trim_start_matches(',').trim().to_owned();
            if label.is_empty() || label.starts_with('}') || chars.next() != Some('"') {
                break;
            }
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(label.clone());
            values.entry((name.to_owned(), label)).or_default().insert(value);
            if chars.peek() == Some(&'}') {
                break;
            }
        }
    }
    for name in PROMETHEUS_SERIES {
        series.insert((*name).to_owned(), TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect());
    }
    Catalogue { series, values }
}

/// `ssobridge demo`, used as an operator's users use it, then scraped: a login that succeeds
/// (its code redeemed, userinfo read), one that fails (dave@example.org is deactivated at his
/// IdP), a signing key rotated, and requests past the per-source limit until one is answered
/// 429. The demo's own `/metrics` is its whole process's.
async fn live_scrape() -> String {
    use crate::common::{query, Browser};
    use crate::demo::{authorize, start_demo_env, CLIENT_REDIRECT};
    let demo = start_demo_env(
        &["--port", "0"],
        &[("SSOBRIDGE_RATE_LIMITS__PER_IP_PER_MINUTE", "40"), ("SSOBRIDGE_SCALEKIT__LOOKUP_ON_MISS", "true")],
    )
    .await;
    let http = crate::common::http();
    // Ready: the background checks have run (ssobridge_ready is theirs).
    crate::common::wait_until("the demo is ready", crate::common::STARTUP_DEADLINE, || {
        let url = format!("{}/readyz", demo.url);
        let http = http.clone();
        async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let landed =
        Browser::default().follow_until(&authorize(&demo, "alice@example.com"), CLIENT_REDIRECT).await.expect("login");
    let code = query(&landed).get("code").cloned().expect("a code");
    let tokens: serde_json::Value = http
        .post(format!("{}/token", demo.url))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CLIENT_REDIRECT)])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    let userinfo = http
        .get(format!("{}/userinfo", demo.url))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status().as_u16(), 200);
    let failed =
        Browser::default().follow_until(&authorize(&demo, "dave@example.org"), CLIENT_REDIRECT).await.expect("login");
    assert_eq!(query(&failed).get("error").map(String::as_str), Some("access_denied"));
    // A domain with no route: looked up at the simulator (lookup_on_miss), then refused there.
    let unrouted = Browser::default()
        .follow_until(&authorize(&demo, "eve@nowhere.example"), CLIENT_REDIRECT)
        .await
        .expect("login");
    assert_eq!(query(&unrouted).get("error").map(String::as_str), Some("access_denied"));
    // A request /authorize refuses: a redirect_uri the demo client did not register.
    let refused = http
        .get(authorize(&demo, "alice@example.com").replace("localhost%3A3000", "localhost%3A3001"))
        .send()
        .await
        .expect("authorize");
    assert_eq!(refused.status().as_u16(), 400);
    // A domain added in the IdP portal: Scalekit's signed webhooks to the broker.
    let portal = http
        .post(format!("{}/simulator/portal/domains", demo.url))
        .form(&[("domain", "newco.example"), ("organization_id", ""), ("verification", "admin")])
        .send()
        .await
        .expect("portal");
    assert!(portal.text().await.expect("page").contains(": 200 OK"), "a webhook delivered");
    let rotated = http
        .post(format!("{}/admin/keys/rotate", demo.url))
        .bearer_auth(ssobridge::demo::DEMO_ADMIN_TOKEN)
        .send()
        .await
        .expect("rotate");
    assert_eq!(rotated.status().as_u16(), 201, "{:?}", rotated.text().await);
    let mut limited = false;
    for _ in 0..200 {
        let response = http
            .post(format!("{}/token", demo.url))
            .basic_auth("demo", Some("not-the-secret"))
            .form(&[("grant_type", "authorization_code"), ("code", "x")])
            .send()
            .await
            .expect("token");
        if response.status().as_u16() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "40 requests a minute from one source, and no 429 after 200");
    http.get(format!("{}/metrics", demo.url)).send().await.expect("metrics").text().await.expect("text")
}

// ---------------------------------------------------------------------------------------------
// What a PromQL expression names. Not a parser: a lexer that finds the vector selectors (a
// metric name and its matchers) and the labels of grouping clauses, which is all the checks
// below need; promtool says whether the expression is valid.

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A number or a duration (`5m`, `1w`, `1e-9`).
    Number,
    /// A range or subquery in brackets, skipped whole.
    Range,
    Punct(String),
}

fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut value = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Str(value));
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            out.push(Token::Range);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                // 1e-9: the sign belongs to the exponent.
                if (chars[i] == 'e' || chars[i] == 'E') && matches!(chars.get(i + 1), Some('-' | '+')) {
                    i += 1;
                }
                i += 1;
            }
            out.push(Token::Number);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            // Two-character operators (=~, !=, !~, ==, >=, <=) as one token.
            let pair: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["=~", "!=", "!~", "==", ">=", "<="].contains(&pair.as_str()) {
                out.push(Token::Punct(pair));
                i += 2;
            } else {
                out.push(Token::Punct(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// Words of PromQL that are not metric names when they stand alone.
const KEYWORDS: &[&str] =
    &["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "atan2"];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Aggregation operators, which may be followed by their grouping clause instead of `(`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

#[derive(Debug)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
struct Names {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
    /// Anything the lexer could not follow (a selector without a metric name, an unclosed `{`).
    problems: Vec<String>,
}

fn names(expr: &str) -> Names {
    let tokens = tokens(expr);
    let mut names = Names::default();
    let punct = |i: usize, p: &str| matches!(tokens.get(i), Some(Token::Punct(q)) if q == p);
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if GROUPING.contains(&word.as_str()) => {
                i += 1;
                // `group_left` and `group_right` may stand without a label list.
                if punct(i, "(") {
                    i += 1;
                    while i < tokens.len() && !punct(i, ")") {
                        if let Token::Ident(label) = &tokens[i] {
                            names.grouping.push(label.clone());
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(word)
                if KEYWORDS.contains(&word.as_str())
                    || AGGREGATIONS.contains(&word.as_str())
                    || ["inf", "nan"].contains(&word.as_str()) =>
            {
                i += 1
            }
            // A function.
            Token::Ident(_) if punct(i + 1, "(") => i += 1,
            Token::Ident(metric) => {
                let mut selector = Selector { metric: metric.clone(), matchers: Vec::new() };
                i += 1;
                if punct(i, "{") {
                    i += 1;
                    while i < tokens.len() && !punct(i, "}") {
                        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
                            (Some(Token::Ident(label)), Some(Token::Punct(op)), Some(Token::Str(value))) => {
                                selector.matchers.push((label.clone(), op.clone(), value.clone()));
                                i += 3;
                            }
                            (Some(Token::Punct(comma)), _, _) if comma == "," => i += 1,
                            (token, _, _) => {
                                names.problems.push(format!("in the matchers of {metric}: {token:?}"));
                                i += 1;
                            }
                        }
                    }
                    if i >= tokens.len() {
                        names.problems.push(format!("no closing brace after {metric}{{"));
                    }
                    i += 1;
                }
                names.selectors.push(selector);
            }
            Token::Punct(brace) if brace == "{" => {
                names.problems.push("a selector without a metric name: name the metric".to_owned());
                i += 1;
            }
            _ => i += 1,
        }
    }
    names
}

/// The values a regular-expression matcher names when it is a plain alternation (`a|b|c`):
/// each one. None for anything more (`5..`, `.*`, a Grafana `$variable`): those are not checked.
fn literal_alternatives(value: &str) -> Option<Vec<&str>> {
    let literal = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c));
    let parts: Vec<&str> = value.split('|').collect();
    parts.iter().all(|p| literal(p)).then_some(parts)
}

/// Every metric, label and fixed label value `expr` names that `catalogue` lacks, as sentences
/// naming `what`.
fn unknown_names(what: &str, expr: &str, catalogue: &Catalogue) -> Vec<String> {
    let names = names(expr);
    let mut problems: Vec<String> = names.problems.iter().map(|p| format!("{what}: {p} in {expr}")).collect();
    let mut labels_in_scope: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for selector in &names.selectors {
        let Some(labels) = catalogue.series.get(&selector.metric) else {
            problems.push(format!("{what}: {} is not a metric the broker exports", selector.metric));
            continue;
        };
        labels_in_scope.extend(labels.iter().cloned());
        for (label, op, value) in &selector.matchers {
            if !labels.contains(label) {
                problems.push(format!("{what}: {} has no label {label}", selector.metric));
                continue;
            }
            let Some(allowed) = catalogue.values.get(&(selector.metric.clone(), label.clone())) else { continue };
            let given = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                _ => literal_alternatives(value).unwrap_or_default(),
            };
            for value in given {
                if !allowed.contains(value) {
                    problems.push(format!(
                        "{what}: {}{{{label}}} is never {value:?} (it is one of {allowed:?})",
                        selector.metric
                    ));
                }
            }
        }
    }
    for label in &names.grouping {
        if !labels_in_scope.contains(label) {
            problems.push(format!("{what}: groups by {label}, which none of its series has"));
        }
    }
    problems
}

/// Metric names mentioned in prose (annotations, panel descriptions): words that begin with
/// `ssobridge_`.
fn metrics_in_text(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("ssobridge_"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------

fn promtool() -> PathBuf {
    program("promtool", &[], "scripts/deps/prometheus.sh")
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool_ok(args: &[&str]) -> String {
    let output = Command::new(promtool()).args(args).output().expect("run promtool");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "promtool {}: {}\n{stdout}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn alerts_file() -> PathBuf {
    deploy_dir().join("prometheus/alerts.yaml")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Json {
    let path = deploy_dir().join("grafana/ssobridge.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The alerting rules of the rule file: (name, rule).
fn alert_rules(file: &Value) -> Vec<(String, Value)> {
    let groups = file["groups"].as_sequence().expect("groups: a list");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|rule| rule["alert"].as_str().map(|name| (name.to_owned(), rule.clone())))
        .collect()
}

/// Every panel, those inside collapsed rows included.
fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels: a list") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The PromQL of the dashboard: (where, expression), from every panel's targets and from the
/// selector of every `label_values(selector, label)` variable query.
fn dashboard_queries(dashboard: &Json) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((format!("panel {:?} {}", panel["title"], target["refId"]), expr.to_owned()));
            }
        }
    }
    for (name, query) in variable_queries(dashboard) {
        let (selector, _) = label_values(&query).unwrap_or_else(|| panic!("variable {name}: {query}"));
        queries.push((format!("variable {name}"), selector.to_owned()));
    }
    queries
}

/// The query variables: (name, query).
fn variable_queries(dashboard: &Json) -> Vec<(String, String)> {
    variables(dashboard)
        .into_iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"].as_str().or(v["query"].as_str()).expect("a variable's query");
            (v["name"].as_str().unwrap_or_default().to_owned(), query.to_owned())
        })
        .collect()
}

fn variables(dashboard: &Json) -> Vec<&Json> {
    dashboard["templating"]["list"].as_array().expect("templating.list").iter().collect()
}

/// `label_values(selector, label)`: (selector, label).
fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// The Grafana variables `text` refers to: `$name`, `${name}`, `${name:format}`, `[[name]]`.
fn variable_references(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices('$') {
        let rest = &text[i + 1..];
        let name = match rest.strip_prefix('{') {
            Some(braced) => ident(braced),
            None => ident(rest),
        };
        if !name.is_empty() {
            found.insert(name);
        }
    }
    for (i, _) in text.match_indices("[[") {
        found.insert(ident(&text[i + 2..]));
    }
    found
}

/// `promtool check rules` of `exprs` written as recording rules: whether each is PromQL that
/// Prometheus accepts.
fn check_as_recording_rules(dir: &Path, exprs: &[(String, String)]) {
    let rules: Vec<Json> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({ "record": format!("ssobridge_dashboard:query_{i}"), "expr": expr }))
        .collect();
    let file = dir.join("dashboard-queries.yaml");
    let text = serde_yaml::to_string(&json!({ "groups": [{ "name": "dashboard", "rules": rules }] })).expect("YAML");
    std::fs::write(&file, text).expect("write rules");
    let output = Command::new(promtool()).args(["check", "rules"]).arg(&file).output().expect("run promtool");
    if !output.status.success() {
        let report = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
        let index: Vec<String> =
            exprs.iter().enumerate().map(|(i, (what, expr))| format!("{i}: {what}: {expr}")).collect();
        panic!("promtool rejects a dashboard query:\n{report}\nqueries:\n{}", index.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------

/// The rule file passes `promtool check rules`, its unit tests pass `promtool test rules`, and
/// those tests see every alert both fire and stay quiet.
#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let alerts = alerts_file();
    let tests = deploy_dir().join("prometheus/alerts.test.yaml");
    let checked = promtool_ok(&["check", "rules", &alerts.to_string_lossy()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool_ok(&["test", "rules", &tests.to_string_lossy()]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    let rules = alert_rules(&read_yaml(&alerts));
    let unit_tests = read_yaml(&tests);
    assert_eq!(unit_tests["rule_files"], serde_yaml::from_str::<Value>("[alerts.yaml]").expect("YAML"));
    let cases: Vec<&Value> = unit_tests["tests"]
        .as_sequence()
        .expect("tests: a list")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten())
        .collect();
    for (name, _) in &rules {
        let of_this = cases.iter().filter(|c| c["alertname"].as_str() == Some(name.as_str()));
        let (firing, quiet): (Vec<&&Value>, Vec<&&Value>) =
            of_this.partition(|c| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()));
        assert!(!firing.is_empty(), "alerts.test.yaml: no case where {name} fires");
        assert!(!quiet.is_empty(), "alerts.test.yaml: no case where {name} stays quiet");
    }
    for case in &cases {
        let name = case["alertname"].as_str().unwrap_or_default();
        assert!(rules.iter().any(|(n, _)| n == name), "alerts.test.yaml tests {name}, which alerts.yaml lacks");
    }
}

/// Each alert waits (`for`), says how bad it is and what to check, and the issue's alerts are
/// all there: the upstream, login failures per client, adapter errors, store errors, logins
/// that stopped, the signing key's age.
#[test]
fn every_alert_has_a_severity_a_summary_and_what_to_check() {
    let rules = alert_rules(&read_yaml(&alerts_file()));
    for (name, rule) in &rules {
        assert!(name.starts_with("Ssobridge"), "{name}: alerts are named Ssobridge…");
        assert!(rule["for"].as_str().is_some_and(|d| !d.is_empty()), "{name}: no `for:`");
        let severity = rule["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning")), "{name}: severity {severity:?}");
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{name}: annotations.{annotation} says too little: {text:?}");
        }
    }
    let exprs: Vec<String> =
        rules.iter().map(|(name, rule)| format!("{name}: {}", rule["expr"].as_str().unwrap_or_default())).collect();
    let uses = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    for needle in [
        "ssobridge_ready{check=\"upstream\"}",
        "ssobridge_ready{check=\"credentials\"}",
        "ssobridge_upstream_duration_seconds_count{outcome=\"error\"}",
        "ssobridge_logins_failed_total",
        "offset 1w",
        "ssobridge_adapter_duration_seconds_count{outcome=\"misconfigured\"}",
        "ssobridge_adapter_duration_seconds_count{outcome=\"transient\"}",
        "ssobridge_ready{check=\"store\"}",
        "ssobridge_store_errors_total",
        "ssobridge_signing_key_age_seconds",
    ] {
        assert!(uses(needle), "no alert on {needle}:\n{}", exprs.join("\n"));
    }
    let described = |name: &str, words: &[&str]| {
        let (_, rule) = rules.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no alert {name}"));
        let text = rule["annotations"]["description"].as_str().unwrap_or_default();
        for word in words {
            assert!(text.contains(word), "{name}'s description does not point at {word}: {text}");
        }
    };
    described("SsobridgeUpstreamUnreachable", &["/readyz", "upstream.issuer"]);
    described("SsobridgeUpstreamCredentialsRefused", &["/readyz", "upstream.client_secret"]);
    described("SsobridgeSigningKeyOld", &["POST /admin/keys/rotate"]);
}

/// Every metric, label and label value the alerts name (in their expressions and in the metric
/// names their descriptions cite) that `catalogue` lacks.
fn alerts_problems(catalogue: &Catalogue) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, rule) in alert_rules(&read_yaml(&alerts_file())) {
        let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{name}: expr"));
        problems.extend(unknown_names(&name, expr, catalogue));
        for annotation in ["summary", "description"] {
            for metric in metrics_in_text(rule["annotations"][annotation].as_str().unwrap_or_default()) {
                if !catalogue.series.contains_key(&metric) {
                    problems.push(format!("{name}: annotations.{annotation} cites {metric}, which is not exported"));
                }
            }
        }
    }
    problems
}

/// The dashboard imports into Grafana as it is: its schema, the variables it is used through
/// (a Prometheus data source, job, instance, and clients from the login counters), a data
/// source and queries on every panel, panels on the 24-column grid without overlapping, and
/// only variables it defines.
#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let dashboard = dashboard();
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion {}",
        dashboard["schemaVersion"]
    );
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid {}", dashboard["uid"]);
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["id"].is_null(), "an exported dashboard has no id (Grafana assigns one at import)");

    let variables = variables(&dashboard);
    let variable =
        |name: &str| *variables.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no variable {name}"));
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let client = variable("client");
    assert_eq!(client["multi"], true);
    assert_eq!(client["includeAll"], true);
    let (selector, label) = label_values(client["query"]["query"].as_str().unwrap_or_default()).expect("label_values");
    assert!(selector.starts_with("ssobridge_logins_started_total"), "client values from {selector}");
    assert_eq!(label, "client");
    for name in ["job", "instance"] {
        assert_eq!(variable(name)["type"], "query", "{name}");
    }
    let defined: BTreeSet<String> = variables.iter().filter_map(|v| v["name"].as_str()).map(str::to_owned).collect();
    for v in &variables {
        if v["type"] == "query" {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "variable {} queries the chosen data source",
                v["name"]
            );
        }
    }

    let panels = panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "panel id {} twice", panel["id"]);
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (grid["x"].as_u64(), grid["y"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else { panic!("{title}: gridPos {grid}") };
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {grid} is off the 24-column grid");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            if let Some(other) = cells.insert(cell, title.to_owned()) {
                panic!("panels {other:?} and {title:?} overlap at {cell:?}");
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            ["stat", "timeseries"].contains(&panel["type"].as_str().unwrap_or_default()),
            "{title}: {}",
            panel["type"]
        );
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}: data source");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: the chosen data source");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("{title}: no targets"));
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: a target's data source");
            assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: a target without expr");
            assert!(ref_ids.insert(target["refId"].as_str().expect("refId")), "{title}: refId twice");
        }
        let text = serde_json::to_string(panel).expect("JSON");
        for name in variable_references(&text) {
            assert!(defined.contains(&name) || name.starts_with("__"), "{title}: ${name} is not a variable");
        }
    }
    for (name, query) in variable_queries(&dashboard) {
        for used in variable_references(&query) {
            assert!(defined.contains(&used), "variable {name} refers to ${used}, which is not defined");
        }
    }
}

/// Every query of the dashboard is PromQL that promtool accepts; every quantile is taken of a
/// histogram's buckets summed by `le`.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let dir = TempDir::new("dashboard-promql");
    let queries = dashboard_queries(&dashboard());
    assert!(queries.len() >= 20, "{} queries", queries.len());
    check_as_recording_rules(dir.path(), &queries);
    for (what, expr) in &queries {
        let names = names(expr);
        if names.selectors.iter().any(|s| s.metric.ends_with("_bucket")) {
            assert!(expr.contains("histogram_quantile("), "{what}: buckets outside histogram_quantile: {expr}");
            assert!(names.grouping.iter().any(|l| l == "le"), "{what}: buckets not summed by le: {expr}");
        }
    }
}

/// Issue 17's contract, live: every metric, label and label value that a dashboard query, a
/// dashboard variable or an alert names (and every metric their descriptions cite) is in the
/// `/metrics` of a broker that served a login that succeeded and one that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_resolve_against_a_live_scrape() {
    let catalogue = scraped(&live_scrape().await);
    let mut problems = alerts_problems(&catalogue);
    problems.extend(dashboard_problems(&catalogue));
    assert!(problems.is_empty(), "not in the live /metrics:\n{}", problems.join("\n"));
}

/// Every metric, label and label value the dashboard names that `catalogue` lacks; and the
/// dashboard shows what the issue lists: logins by client and outcome, failure reasons, latency
/// per step, the upstream and the adapters, store errors, 429s, instances up.
fn dashboard_problems(catalogue: &Catalogue) -> Vec<String> {
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    let mut problems: Vec<String> =
        queries.iter().flat_map(|(what, expr)| unknown_names(what, expr, catalogue)).collect();
    for (name, query) in variable_queries(&dashboard) {
        let (selector, label) = label_values(&query).expect("label_values");
        let metric = names(selector).selectors.first().map(|s| s.metric.clone()).unwrap_or_default();
        if !catalogue.series.get(&metric).is_some_and(|labels| labels.contains(label)) {
            problems.push(format!("variable {name}: {metric} has no label {label}"));
        }
    }
    for panel in panels(&dashboard) {
        for metric in metrics_in_text(panel["description"].as_str().unwrap_or_default()) {
            if !catalogue.series.contains_key(&metric) {
                problems.push(format!("panel {}: its description cites {metric}", panel["title"]));
            }
        }
    }

    let all: Vec<&str> = queries.iter().map(|(_, expr)| expr.as_str()).collect();
    let shown = |needle: &str| all.iter().any(|e| e.contains(needle));
    for needle in [
        "sum by (client) (rate(ssobridge_logins_started_total",
        "sum by (client) (rate(ssobridge_logins_completed_total",
        "sum by (client) (rate(ssobridge_logins_failed_total",
        "sum by (client, reason) (rate(ssobridge_logins_failed_total",
        "route=\"/authorize\"",
        "route=\"/callback\"",
        "route=\"/token\"",
        "route=\"/userinfo\"",
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.99, ",
        "ssobridge_upstream_duration_seconds_bucket",
        "ssobridge_upstream_duration_seconds_count{job=~\"$job\", instance=~\"$instance\", outcome=\"error\"}",
        "ssobridge_adapter_duration_seconds_bucket",
        "outcome=~\"transient|misconfigured\"",
        "ssobridge_store_errors_total",
        "ssobridge_rate_limited_total",
        "status=\"429\"",
        "up{",
    ] {
        assert!(shown(needle), "no dashboard query has {needle}");
    }
    problems
}

/// A scrape as the broker writes it, for the checks' own test.
const SAMPLE: &str = r#"# HELP ssobridge_logins_failed_total Logins that ended in an error, by client and reason.
# TYPE ssobridge_logins_failed_total counter
ssobridge_logins_failed_total{client="a\"b",reason="user_not_active"} 1
ssobridge_logins_failed_total{client="demo",reason="invalid_state"} 2
ssobridge_store_errors_total 0
ssobridge_ready{check="store"} 1
ssobridge_ready{check="upstream"} 1
ssobridge_adapter_duration_seconds_bucket{adapter="none",outcome="unchanged",le="0.005"} 1
ssobridge_adapter_duration_seconds_count{adapter="none",outcome="linked"} 0
ssobridge_adapter_duration_seconds_count{adapter="none",outcome="unchanged"} 1
ssobridge_tokens_issued_total{client="demo"} 1
ssobridge_routes{source="config"} 3
"#;

/// The lexer behind the contract checks finds what it must, and the checks catch what they
/// exist for: an unknown metric, a label the metric lacks, a value the contract rules out, a
/// grouping label no series has.
#[test]
fn the_contract_check_catches_unknown_metrics_labels_and_values() {
    let found = names(
        r#"histogram_quantile(0.99, sum by (operation, le) (rate(ssobridge_upstream_duration_seconds_bucket{job=~"$job", outcome!="x,y"}[5m] offset 1w))) > 1e-3 and on (job) up"#,
    );
    let metrics: Vec<&str> = found.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["ssobridge_upstream_duration_seconds_bucket", "up"]);
    assert_eq!(found.selectors[0].matchers[1], ("outcome".to_owned(), "!=".to_owned(), "x,y".to_owned()));
    assert_eq!(found.grouping, ["operation", "le", "job"]);
    assert!(found.problems.is_empty(), "{:?}", found.problems);

    let catalogue = scraped(SAMPLE);
    assert_eq!(
        catalogue.values[&("ssobridge_logins_failed_total".to_owned(), "client".to_owned())],
        ["a\"b".to_owned(), "demo".to_owned()].into_iter().collect()
    );
    assert!(catalogue.series["ssobridge_adapter_duration_seconds_bucket"].contains("le"));
    assert!(catalogue.series["ssobridge_store_errors_total"].contains("job"), "Prometheus's target labels");
    assert!(unknown_names(
        "ok",
        r#"sum by (client) (rate(ssobridge_logins_failed_total{reason="user_not_active"}[5m]))"#,
        &catalogue
    )
    .is_empty());
    let caught = |expr: &str, expected: &str| {
        let problems = unknown_names("t", expr, &catalogue);
        assert!(problems.iter().any(|p| p.contains(expected)), "{expr}: {problems:?}");
    };
    caught("rate(ssobridge_logins_total[5m])", "ssobridge_logins_total is not a metric");
    caught(r#"ssobridge_store_errors_total{client="a"}"#, "has no label client");
    caught(r#"ssobridge_ready{check="redis"}"#, "is never \"redis\"");
    caught(r#"ssobridge_adapter_duration_seconds_count{outcome=~"linked|errored"}"#, "is never \"errored\"");
    caught("sum by (reason) (ssobridge_tokens_issued_total)", "groups by reason");
    caught(r#"{__name__="ssobridge_routes"}"#, "without a metric name");
    assert_eq!(
        metrics_in_text("see ssobridge_logins_failed_total{client=\"a\"} by reason"),
        ["ssobridge_logins_failed_total"]
    );
    assert_eq!(
        variable_references(r#"x{a=~"$job", b="${instance:regex}", c="[[client]]"}[$__rate_interval]"#),
        ["__rate_interval".to_owned(), "client".to_owned(), "instance".to_owned(), "job".to_owned()]
            .into_iter()
            .collect()
    );
}
