//! The Helm chart, checked with a real Helm binary (unpacked by scripts/setup.sh):
//! `helm lint --strict` and `helm template` for every ci/*-values.yaml scenario, the rendered
//! manifests parsed and held to what each scenario promises, the rendered gateway.yaml
//! validated by `authgate check`, and bad or contradictory values refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn helm(args: &[&str]) -> (bool, String, String) {
    let bin = root().join("testenv/.bin/helm");
    assert!(bin.exists(), "helm missing: run scripts/setup.sh");
    let out = Command::new(bin)
        .args(args)
        .current_dir(root())
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CHART: &str = "charts/authgate";

fn render(values: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "t", CHART, "-f", values];
    args.extend_from_slice(extra);
    let (ok, out, err) = helm(&args);
    assert!(ok, "helm template {values} failed: {err}");
    serde_yaml::Deserializer::from_str(&out)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(docs: &'a [Value], k: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == k)
}

fn containers(docs: &[Value]) -> Vec<Value> {
    let dep = kind(docs, "Deployment").expect("a Deployment");
    dep["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .clone()
}

/// Writes the ConfigMap's gateway.yaml and runs `authgate check` on it, with the env vars the
/// pod gets from its Secret.
fn check_rendered_config(docs: &[Value]) -> (bool, String) {
    let cm = kind(docs, "ConfigMap").expect("ConfigMap");
    let yaml = cm["data"]["gateway.yaml"].as_str().expect("gateway.yaml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    // The assertion key the chart generated, where the pod would find it mounted.
    let yaml = match assertion_key(docs) {
        Some(pem) => {
            let key = dir.path().join("assertion-keys.pem");
            std::fs::write(&key, pem).unwrap();
            let mut parsed: serde_yaml::Value = serde_yaml::from_str(yaml).expect("YAML");
            let mounted = [(ASSERTION_KEY, key.display().to_string())];
            repath(&mut parsed, &mounted);
            serde_yaml::to_string(&parsed).expect("serialize gateway.yaml")
        }
        None => yaml.to_string(),
    };
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .env("AUTHGATE_CLIENT_SECRET", "x")
        .env(
            "AUTHGATE_SESSION_SECRET",
            "0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .env("AUTHGATE_REDIS_PASSWORD", "x")
        .env("AUTHGATE_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
        .env("AUTHGATE_SCIM_TOKEN", "0123456789abcdef0123456789abcdef")
        // What AKS's workload identity webhook injects (workloadIdentity.enabled).
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .env(
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The Secret of `secrets:` (not the assertion key's).
fn secrets_secret(docs: &[Value]) -> Option<&Value> {
    docs.iter().find(|d| {
        d["kind"] == "Secret"
            && !d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-assertion"))
    })
}

const ASSERTION_KEY: &str = "/etc/authgate/assertion/assertion-keys.pem";

/// The PEM in the chart's generated assertion Secret, if it rendered one.
fn assertion_key(docs: &[Value]) -> Option<Vec<u8>> {
    use base64::Engine;
    let secret = docs.iter().find(|d| {
        d["kind"] == "Secret"
            && d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-assertion"))
    })?;
    let b64 = secret["data"]["assertion-keys.pem"].as_str()?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn assert_hardened(c: &Value) {
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
}

#[test]
fn every_scenario_lints_strictly() {
    let scenarios: Vec<PathBuf> = std::fs::read_dir(root().join(CHART).join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(scenarios.len() >= 4, "{scenarios:?}");
    for s in scenarios {
        let rel = s
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let (ok, out, err) = helm(&["lint", "--strict", CHART, "-f", &rel]);
        assert!(ok, "helm lint --strict -f {rel}: {out}{err}");
    }
}

#[test]
fn standalone_renders_hardened_deployment_and_opt_in_objects() {
    let docs = render("charts/authgate/ci/standalone-values.yaml", &[]);
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceMonitor",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
    ] {
        assert!(kind(&docs, k).is_some(), "no {k}");
    }
    let dep = kind(&docs, "Deployment").unwrap();
    assert!(
        dep["spec"].get("replicas").is_none(),
        "the HPA owns replicas"
    );
    let pod = &dep["spec"]["template"];
    assert!(
        pod["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    let cs = containers(&docs);
    assert_eq!(cs.len(), 1);
    assert_hardened(&cs[0]);
    let sm = kind(&docs, "ServiceMonitor").unwrap();
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "admin");
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "rendered gateway.yaml is not valid: {out}");
    assert!(out.contains("OK (3 route(s), 1 provider(s)"), "{out}");
}

#[test]
fn redis_scenario_allows_replicas_and_the_hpa_with_its_password_and_admin_api() {
    let docs = render("charts/authgate/ci/redis-values.yaml", &[]);
    assert!(kind(&docs, "HorizontalPodAutoscaler").is_some());
    let env = containers(&docs)[0]["env"].clone();
    let names: Vec<&str> = env
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"AUTHGATE_REDIS_PASSWORD"), "{names:?}");
    assert!(names.contains(&"AUTHGATE_ADMIN_TOKEN"), "{names:?}");
    assert!(names.contains(&"AUTHGATE_SCIM_TOKEN"), "{names:?}");
    let secret = secrets_secret(&docs).unwrap();
    assert!(secret["data"]["redis-password"].is_string());
    assert!(secret["data"]["admin-token"].is_string());
    assert!(secret["data"]["scim-token"].is_string());
    let cm = kind(&docs, "ConfigMap").unwrap();
    let yaml = cm["data"]["gateway.yaml"].as_str().unwrap();
    assert!(
        yaml.contains("store: redis") && yaml.contains("service_name: \"mymaster\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("password: \"${AUTHGATE_REDIS_PASSWORD}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("api_token: \"${AUTHGATE_ADMIN_TOKEN}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("scim:\n  token: \"${AUTHGATE_SCIM_TOKEN}\"\n  match: externalId")
            && yaml.contains("department: X-Auth-Department")
            && yaml.contains("on_failure: deny"),
        "{yaml}"
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "rendered gateway.yaml is not valid: {out}");
    // No bundled Redis unless asked for.
    assert_eq!(docs.iter().filter(|d| d["kind"] == "Deployment").count(), 1);
}

#[test]
fn bundled_redis_is_a_separate_workload_authgate_selectors_never_match() {
    let docs = render(
        "charts/authgate/ci/standalone-values.yaml",
        &[
            "--set",
            "config.session.store=redis,redisBundled.enabled=true",
        ],
    );
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 2);
    let labels_of = |d: &Value| d["spec"]["template"]["metadata"]["labels"].clone();
    let selector_of = |d: &Value| d["spec"]["selector"]["matchLabels"].clone();
    let (gw, redis) = if deployments[0]["metadata"]["name"] == "t-authgate" {
        (deployments[0], deployments[1])
    } else {
        (deployments[1], deployments[0])
    };
    let matches = |selector: &Value, labels: &Value| {
        selector
            .as_mapping()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(
        !matches(&selector_of(gw), &labels_of(redis)),
        "authgate's selector takes the redis pod"
    );
    assert!(
        !matches(&selector_of(redis), &labels_of(gw)),
        "redis's selector takes authgate pods"
    );
    let services: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Service").collect();
    for svc in services {
        let sel = svc["spec"]["selector"].clone();
        assert!(
            matches(&sel, &labels_of(gw)) != matches(&sel, &labels_of(redis)),
            "{svc:?}"
        );
    }
    let cm = kind(&docs, "ConfigMap").unwrap();
    let yaml = cm["data"]["gateway.yaml"].as_str().unwrap();
    assert!(
        yaml.contains("url: redis://t-authgate-redis:6379/0"),
        "{yaml}"
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "rendered gateway.yaml is not valid: {out}");
}

#[test]
fn config_changes_change_the_checksum() {
    let a = render("charts/authgate/ci/standalone-values.yaml", &[]);
    let b = render(
        "charts/authgate/ci/standalone-values.yaml",
        &["--set", "config.session.lifetime=4h"],
    );
    let sum = |d: &[Value]| {
        kind(d, "Deployment").unwrap()["spec"]["template"]["metadata"]["annotations"]
            ["checksum/config"]
            .clone()
    };
    assert_ne!(sum(&a), sum(&b));
}

#[test]
fn sidecar_renders_the_app_container_into_the_pod() {
    let docs = render("charts/authgate/ci/sidecar-values.yaml", &[]);
    let cs = containers(&docs);
    let names: Vec<&str> = cs.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["authgate", "wiki"]);
    assert_eq!(cs[1]["image"], "ghcr.io/example/wiki:1.4.2");
    assert_eq!(cs[1]["ports"][0]["containerPort"], 3000);
    assert_hardened(&cs[0]);
    let cm = kind(&docs, "ConfigMap").unwrap();
    let gw: Value = serde_yaml::from_str(cm["data"]["gateway.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        gw["routes"][0]["upstream"], "127.0.0.1:3000",
        "authgate fronts the app in the pod"
    );
    let svc = kind(&docs, "Service").unwrap();
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"], "http",
        "the Service reaches authgate, not the app"
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
}

#[test]
fn existing_secret_renders_no_secret_and_references_it() {
    let docs = render("charts/authgate/ci/existing-secret-values.yaml", &[]);
    assert!(secrets_secret(&docs).is_none());
    let cs = containers(&docs);
    let env = cs[0]["env"].as_sequence().unwrap();
    for e in env {
        assert_eq!(
            e["valueFrom"]["secretKeyRef"]["name"],
            "authgate-credentials"
        );
    }
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
    let cm = kind(&docs, "ConfigMap").unwrap();
    assert!(cm["data"]["gateway.yaml"]
        .as_str()
        .unwrap()
        .contains("forward_auth:"));
}

#[test]
fn saml_scenario_mounts_the_sp_key() {
    let docs = render("charts/authgate/ci/saml-values.yaml", &[]);
    let secret = secrets_secret(&docs).unwrap();
    assert!(secret["data"].get("saml-sp-key").is_some());
    let cs = containers(&docs);
    let mounts = cs[0]["volumeMounts"].as_sequence().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"] == "/etc/authgate/saml"));
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "rendered SAML gateway.yaml is not valid: {out}");
}

/// Runs testenv/validate-k8s.mjs (npm kubernetes-models: the Kubernetes API's OpenAPI schemas,
/// and the Prometheus Operator's for ServiceMonitor) on a manifest stream.
fn validate_k8s(manifests: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("node")
        .arg(root().join("testenv/validate-k8s.mjs"))
        .current_dir(root().join("testenv"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifests.as_bytes())
        .expect("write manifests");
    let out = child.wait_with_output().expect("validator");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_scenario_validates_against_the_kubernetes_schemas() {
    let mut scenarios: Vec<(String, Vec<&str>)> = std::fs::read_dir(root().join(CHART).join("ci"))
        .expect("ci dir")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.strip_prefix(root()).expect("rel").display().to_string(),
                vec![],
            )
        })
        .collect();
    scenarios.sort();
    // The opt-in objects no scenario file turns on.
    scenarios.push((
        "charts/authgate/ci/standalone-values.yaml".into(),
        vec![
            "--set",
            "config.session.store=redis,redisBundled.enabled=true",
        ],
    ));
    let mut kinds = std::collections::BTreeSet::new();
    for (values, extra) in &scenarios {
        let mut args = vec!["template", "t", CHART, "-f", values.as_str()];
        args.extend_from_slice(extra);
        let (ok, out, err) = helm(&args);
        assert!(ok, "helm template {values} {extra:?}: {err}");
        let (valid, report) = validate_k8s(&out);
        assert!(valid, "{values} {extra:?} does not validate:\n{report}");
        for line in report.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("report line");
            kinds.insert(v["kind"].as_str().unwrap_or_default().to_string());
        }
    }
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(k), "no scenario rendered a {k}: {kinds:?}");
    }
}

#[test]
fn the_schema_validator_refuses_what_the_api_server_would() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("replicas as a string", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: \"two\"\n  selector: {matchLabels: {a: b}}\n  template: {spec: {containers: [{name: c, image: i}]}}\n".into(), "replicas must be integer"),
        ("no selector", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template: {spec: {containers: [{name: c, image: i}]}}\n".into(), "required property selector"),
        ("container without a name", pod("  containers: [{image: i}]\n"), "required property name"),
        ("port as text", pod("  containers: [{name: c, image: i, ports: [{containerPort: http}]}]\n"), "containerPort must be integer"),
        ("probe port as a list", pod("  containers: [{name: c, image: i, readinessProbe: {httpGet: {path: /, port: [1]}}}]\n"), "port"),
        ("runAsNonRoot as text", pod("  securityContext: {runAsNonRoot: \"yes\"}\n  containers: [{name: c, image: i}]\n"), "runAsNonRoot must be boolean"),
        ("unknown kind", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n".into(), "example.com/v1"),
        ("unknown kind in a known group", "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n".into(), "no schema for v1 Widget"),
    ];
    for (what, doc, expect) in cases {
        let (ok, report) = validate_k8s(&doc);
        assert!(!ok, "{what}: accepted: {report}");
        assert!(
            report.contains(expect),
            "{what}: expected {expect:?} in {report}"
        );
    }
}

/// Checkov's Kubernetes policies the chart does not follow, each on purpose.
const CHECKOV_SKIPS: [(&str, &str); 5] = [
    ("CKV_K8S_11", "no CPU limit by default: CFS throttling adds latency to every request of a proxy; set resources.limits.cpu to have one"),
    ("CKV_K8S_43", "images by tag by default; pin a digest in image.tag (tag@sha256:...) in production"),
    ("CKV_K8S_35", "secrets reach the configuration as ${ENV} references; authgate also reads *_file keys for those who mount them"),
    ("CKV_K8S_15", "pull policy IfNotPresent: tags are immutable in the registries this is meant for, and Always makes every start depend on the registry"),
    ("CKV2_K8S_6", "the NetworkPolicy is opt-in (networkPolicy.enabled, on in ci/standalone-values.yaml): it needs the cluster's CNI to enforce it and your monitoring namespace to be named"),
];

/// Runs checkov (PyPI, installed by scripts/setup.sh) on a directory of manifests:
/// (passed, output).
fn checkov(dir: &Path) -> (bool, String) {
    let bin = root().join("testenv/.venv/bin/checkov");
    assert!(bin.exists(), "checkov missing: run scripts/setup.sh");
    let skips: Vec<&str> = CHECKOV_SKIPS.iter().map(|(id, _)| *id).collect();
    let out = Command::new(bin)
        .args([
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "--skip-download",
            "-d",
        ])
        .arg(dir)
        .arg("--skip-check")
        .arg(skips.join(","))
        .output()
        .expect("run checkov");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_scenario_passes_checkovs_kubernetes_policies() {
    // (checkov passes over directories whose names start with a dot, as tempdir's do)
    let scan_dir = || {
        tempfile::Builder::new()
            .prefix("checkov-")
            .tempdir()
            .expect("tempdir")
    };
    let dir = scan_dir();
    let mut scenarios: Vec<(String, Vec<&str>)> = std::fs::read_dir(root().join(CHART).join("ci"))
        .expect("ci dir")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.strip_prefix(root()).expect("rel").display().to_string(),
                vec![],
            )
        })
        .collect();
    scenarios.push((
        "charts/authgate/ci/standalone-values.yaml".into(),
        vec![
            "--set",
            "config.session.store=redis,redisBundled.enabled=true",
        ],
    ));
    for (i, (values, extra)) in scenarios.iter().enumerate() {
        let mut args = vec![
            "template",
            "t",
            CHART,
            "-n",
            "authgate",
            "-f",
            values.as_str(),
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = helm(&args);
        assert!(ok, "helm template {values}: {err}");
        std::fs::write(dir.path().join(format!("scenario-{i}.yaml")), out).expect("write");
    }
    let (ok, report) = checkov(dir.path());
    assert!(
        ok && report.contains("Failed checks: 0"),
        "checkov findings:\n{report}"
    );
    assert!(
        !report.contains("Passed checks: 0,"),
        "nothing was checked:\n{report}"
    );

    // It does find what it should: a privileged container with no probes and no limits.
    let bad = scan_dir();
    std::fs::write(
        bad.path().join("bad.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: authgate}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n        - name: c\n          image: nginx:1.25\n          securityContext: {privileged: true}\n",
    )
    .expect("write");
    let (ok, report) = checkov(bad.path());
    assert!(!ok, "{report}");
    for id in ["CKV_K8S_16", "CKV_K8S_8", "CKV_K8S_13"] {
        assert!(report.contains(id), "{id} not reported:\n{report}");
    }
}

#[test]
fn the_network_policy_opens_the_proxy_port_and_keeps_the_admin_port_to_monitoring() {
    let docs = render("charts/authgate/ci/standalone-values.yaml", &[]);
    let np = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == "t-authgate")
        .expect("authgate's NetworkPolicy");
    let dep = kind(&docs, "Deployment").expect("Deployment");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
    let rules = np["spec"]["ingress"].as_sequence().expect("rules");
    assert_eq!(rules[0]["ports"][0]["port"], "http");
    assert!(
        rules[0].get("from").is_none(),
        "the proxy port is open to all: {rules:?}"
    );
    assert_eq!(rules[1]["ports"][0]["port"], "admin");
    assert_eq!(
        rules[1]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    // Off by default.
    let docs = render("charts/authgate/ci/saml-values.yaml", &[]);
    assert!(!docs.iter().any(|d| d["kind"] == "NetworkPolicy"));
}

#[test]
fn tls_scenario_mounts_the_secret_as_a_directory_and_its_config_checks() {
    let docs = render("charts/authgate/ci/tls-values.yaml", &[]);
    let dep = kind(&docs, "Deployment").expect("Deployment");
    let volumes = dep["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes");
    let tls = volumes
        .iter()
        .find(|v| v["name"] == "tls")
        .expect("tls volume");
    assert_eq!(tls["secret"]["secretName"], "legacy-example-com-tls");
    let mount = containers(&docs)[0]["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "tls")
        .cloned()
        .expect("tls mount");
    assert_eq!(mount["mountPath"], "/etc/authgate/tls");
    // A subPath mount would never see the renewed Secret.
    assert!(mount.get("subPath").is_none());
    let ca = volumes
        .iter()
        .find(|v| v["name"] == "internal-ca")
        .expect("extra volume");
    assert_eq!(ca["configMap"]["name"], "internal-ca-bundle");
    assert!(containers(&docs)[0]["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .any(|m| m["mountPath"] == "/etc/authgate/internal-ca"));
    // The rendered gateway.yaml, with the Secret's files made here, passes `authgate check`.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    common::pki::make_ca(dir.path(), "tls");
    let mut docs = docs;
    for doc in docs.iter_mut() {
        if doc["kind"] == "ConfigMap" {
            let yaml = doc["data"]["gateway.yaml"].as_str().expect("gateway.yaml");
            assert!(
                yaml.contains("cert_file: /etc/authgate/tls/tls.crt"),
                "{yaml}"
            );
            // The internal CA of the upstream (mounted from a ConfigMap by extraVolumes).
            assert!(
                yaml.contains("ca_file: /etc/authgate/internal-ca/ca.crt"),
                "{yaml}"
            );
            // The pod's mount paths, pointed at this test's files: an edit of the parsed
            // configuration, so only whole values that are these paths change.
            let mounted = [
                ("/etc/authgate/tls/tls.crt", format!("{d}/tls.pem")),
                ("/etc/authgate/tls/tls.key", format!("{d}/tls.key")),
                ("/etc/authgate/internal-ca/ca.crt", format!("{d}/tls.pem")),
            ];
            let mut parsed: serde_yaml::Value =
                serde_yaml::from_str(yaml).expect("rendered gateway.yaml is YAML");
            repath(&mut parsed, &mounted);
            let yaml = serde_yaml::to_string(&parsed).expect("serialize gateway.yaml");
            doc["data"]["gateway.yaml"] = Value::String(yaml);
        }
    }
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "rendered TLS gateway.yaml is not valid: {out}");
}

/// The assertion is on by default: a P-256 key generated into a Secret of its own (kept on
/// uninstall), mounted as a directory the gateway re-reads, and a config that checks with it.
/// A Secret of one's own replaces the generated one; off, nothing of it renders.
#[test]
fn the_assertion_key_is_generated_mounted_and_replaceable() {
    let base = "charts/authgate/ci/standalone-values.yaml";
    let docs = render(base, &[]);
    let secret = docs
        .iter()
        .find(|d| {
            d["kind"] == "Secret"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-assertion"))
        })
        .expect("assertion Secret");
    assert_eq!(
        secret["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let pem = assertion_key(&docs).expect("key");
    let key = openssl::pkey::PKey::private_key_from_pem(&pem).expect("a PEM private key");
    let ec = key.ec_key().expect("EC");
    assert_eq!(
        ec.group().curve_name(),
        Some(openssl::nid::Nid::X9_62_PRIME256V1)
    );
    // Two renders without a cluster generate two keys: the one installed is the one kept
    // (the template reads an existing Secret back with `lookup` on upgrade).
    assert_ne!(assertion_key(&render(base, &[])), Some(pem));
    let mount = containers(&docs)[0]["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "assertion-keys")
        .cloned()
        .expect("assertion mount");
    assert_eq!(mount["mountPath"], "/etc/authgate/assertion");
    assert!(
        mount.get("subPath").is_none(),
        "a rotation must reach the pod"
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
    let cm = kind(&docs, "ConfigMap").expect("ConfigMap");
    assert!(cm["data"]["gateway.yaml"]
        .as_str()
        .is_some_and(|y| y.contains(ASSERTION_KEY)));

    let own = render(base, &["--set", "assertion.existingSecret=my-keys"]);
    assert!(assertion_key(&own).is_none(), "no generated Secret");
    let dep = kind(&own, "Deployment").expect("Deployment");
    let vols = dep["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes");
    assert!(vols.iter().any(|v| v["secret"]["secretName"] == "my-keys"));

    let off = render(base, &["--set", "assertion.enabled=false"]);
    assert!(assertion_key(&off).is_none());
    let cm = kind(&off, "ConfigMap").expect("ConfigMap");
    assert!(!cm["data"]["gateway.yaml"]
        .as_str()
        .unwrap_or("")
        .contains("assertion"));
}

/// Workload identity: the pod label and the ServiceAccount annotation the AKS webhook looks
/// for, no client secret anywhere, and a config that checks with what the webhook injects.
#[test]
fn workload_identity_renders_the_label_the_annotation_and_no_secret() {
    let docs = render("charts/authgate/ci/workload-identity-values.yaml", &[]);
    let dep = kind(&docs, "Deployment").expect("Deployment");
    let pod = &dep["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    let sa = kind(&docs, "ServiceAccount").expect("ServiceAccount");
    assert_eq!(pod["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    let secret = secrets_secret(&docs).expect("the session secret");
    assert!(secret["data"].get("client-secret").is_none(), "{secret:?}");
    let text = serde_yaml::to_string(&docs).expect("yaml");
    assert!(!text.contains("AUTHGATE_CLIENT_SECRET"), "no secret env");
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
    // Without the app's client ID the chart refuses, saying why.
    let (ok, _, err) = helm(&[
        "template",
        "t",
        CHART,
        "-f",
        "charts/authgate/ci/workload-identity-values.yaml",
        "--set",
        "workloadIdentity.clientId=",
    ]);
    assert!(!ok && err.contains("workloadIdentity.clientId"), "{err}");
}

#[test]
fn bad_and_contradictory_values_fail_with_a_reason() {
    let base = "charts/authgate/ci/standalone-values.yaml";
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "mode=daemonset"], "mode"),
        (&["--set", "replicaCount=0"], "replicaCount"),
        (&["--set", "config.session.store=redis"], "needs exactly one of"),
        (
            &["--set", "config.session.store=redis,config.session.redis.url=redis://r:6379,redisBundled.enabled=true"],
            "needs exactly one of",
        ),
        (
            &["--set", "config.session.redis.url=redis://r:6379"],
            "set but unused",
        ),
        (
            &["--set", "config.session.store=redis,config.session.revocation=redis,config.session.redis.url=redis://r:6379"],
            "applies to store=cookie only",
        ),
        (
            &["--set", "config.session.store=redis,config.session.redis.url=redis://r:6379,config.session.redis.usePassword=true"],
            "usePassword needs secrets.redisPassword",
        ),
        (
            &["--set", "config.session.store=redis,config.session.redis.url=ftp://r"],
            "url",
        ),
        (&["--set", "adminApi.enabled=true"], "adminApi.enabled needs"),
        (&["--set", "scim.enabled=true"], "scim.enabled needs secrets.scimToken"),
        (
            &["--set", "scim.enabled=true,secrets.scimToken=not-a-real-scim-token-0123456789"],
            "scim.enabled with several replicas needs",
        ),
        (
            &["--set", "scim.enabled=true,scim.match=email"],
            "match",
        ),
        (
            &["--set", "scim.enabled=true,scim.headers.salary=X-Salary"],
            "salary",
        ),
        (&["--set", "config.publicUrl=ftp://x"], "publicUrl"),
        (&["--set", "containerPort=80"], "containerPort"),
        (
            &["--set", "config.session.store=memory"],
            "store=memory keeps sessions in one replica",
        ),
        (
            &["--set", "secrets.create=false"],
            "secrets.create=false needs secrets.existingSecret",
        ),
        (
            &["--set", "secrets.existingSecret=mine"],
            "leave secrets.clientSecret",
        ),
        (
            &["--set", "secrets.sessionSecret=short"],
            "at least 32 bytes",
        ),
        (
            &["--set", "config.forwardAuth.enabled=true"],
            "trustedProxies",
        ),
        (
            &["--set", "config.publicUrl="],
            "config.publicUrl is required",
        ),
        (&["--set", "tls.enabled=true"], "tls.enabled needs tls.secretName"),
        (
            &["--set", "tls.enabled=true,tls.secretName=s,config.publicUrl=http://app.example.com"],
            "config.publicUrl must be https://",
        ),
        (&["--set", "tls.enabled=true,tls.secretName=s,tls.minVersion=1.1"], "minVersion"),
    ];
    for (extra, reason) in cases {
        let mut args = vec!["template", "t", CHART, "-f", base];
        args.extend_from_slice(extra);
        let (ok, _, err) = helm(&args);
        assert!(!ok, "{extra:?} should fail");
        assert!(
            err.contains(reason),
            "{extra:?}: expected {reason:?} in: {err}"
        );
    }
    // Sidecar without the app image.
    let (ok, _, err) = helm(&[
        "template",
        "t",
        CHART,
        "-f",
        "charts/authgate/ci/sidecar-values.yaml",
        "--set",
        "sidecar.app.image=",
    ]);
    assert!(!ok && err.contains("sidecar.app.image"), "{err}");
    let _ = Path::new(base);
}

/// Every string value in `v` that is one of `paths`' first elements becomes its second.
fn repath(v: &mut serde_yaml::Value, paths: &[(&str, String)]) {
    match v {
        serde_yaml::Value::String(s) => {
            if let Some((_, to)) = paths.iter().find(|(from, _)| s == from) {
                *s = to.clone();
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(|i| repath(i, paths)),
        serde_yaml::Value::Mapping(m) => m.iter_mut().for_each(|(_, i)| repath(i, paths)),
        _ => {}
    }
}

/// Several apps behind one gateway: the hosts, the redirect allow-list, per-host routes and
/// the Envoy dialect reach gateway.yaml, which `authgate check` accepts.
#[test]
fn many_hosts_scenario_renders_a_valid_config() {
    let docs = render("charts/authgate/ci/many-hosts-values.yaml", &[]);
    let cm = kind(&docs, "ConfigMap").expect("ConfigMap");
    let yaml = cm["data"]["gateway.yaml"].as_str().expect("gateway.yaml");
    let cfg: serde_yaml::Value = serde_yaml::from_str(yaml).expect("YAML");
    assert_eq!(cfg["hosts"][1].as_str(), Some("crm.example.com"));
    assert_eq!(
        cfg["allowed_redirect_hosts"][0].as_str(),
        Some("*.docs.example.com")
    );
    assert_eq!(cfg["forward_auth"]["dialect"].as_str(), Some("envoy"));
    assert_eq!(
        cfg["forward_auth"]["envoy_path_prefix"].as_str(),
        Some("/_authgate/ext_authz")
    );
    // A route's require:, allow.claims and deny: pass through as written.
    let billing = &cfg["routes"][1];
    assert_eq!(billing["require"]["auth_context"].as_str(), Some("c1"));
    assert_eq!(
        billing["deny"]["claims"]["jobTitle"][0].as_str(),
        Some("Contract*")
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
    // A parent-domain cookie instead: rendered, and warned about by check.
    let docs = render(
        "charts/authgate/ci/many-hosts-values.yaml",
        &["--set", "config.session.cookieDomain=example.com"],
    );
    let (ok, out) = check_rendered_config(&docs);
    assert!(ok, "{out}");
    assert!(
        out.contains("every host under example.com receives the session cookie"),
        "{out}"
    );
}
