//! `scrubs inject` on real manifests (tests/data/k8s), running the binary:
//! what it adds, that a second run changes nothing, that other resources
//! pass through, and that what it cannot handle is refused with every
//! problem named and nothing written. `scripts/check-deploy.sh` also
//! decodes the output strictly against the Kubernetes API types.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_yaml::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/k8s")
        .join(name)
}

/// Runs `scrubs inject ARGS` with `stdin`; exit code, stdout, stderr.
fn inject(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn names(list: &Value) -> Vec<&str> {
    list.as_sequence()
        .map(|s| s.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The checks every injected pod spec passes; returns the sidecar.
fn assert_injected<'a>(template: &'a Value, log_volume: &str) -> &'a Value {
    let spec = &template["spec"];
    assert_eq!(
        template["metadata"]["annotations"]["scrubs.io/injected"].as_str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let sidecar = &spec["initContainers"][0];
    assert_eq!(
        sidecar["name"].as_str(),
        Some("scrubs"),
        "first init container"
    );
    assert_eq!(
        sidecar["restartPolicy"].as_str(),
        Some("Always"),
        "native sidecar"
    );
    assert_eq!(
        sidecar["startupProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        sidecar["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        sidecar["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        sidecar["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        sidecar["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert!(sidecar["resources"]["limits"]["memory"].is_string());
    // No secret in the environment: every env entry is a literal value.
    for e in sidecar["env"].as_sequence().unwrap() {
        assert!(e.get("valueFrom").is_none(), "{e:?}");
    }
    let mounts = &sidecar["volumeMounts"];
    let mounted = names(mounts);
    for v in [
        log_volume,
        "scrubs-config",
        "scrubs-rules",
        "scrubs-secrets",
        "scrubs-data",
    ] {
        assert!(
            mounted.contains(&v),
            "{v} not mounted in scrubs: {mounted:?}"
        );
        assert!(names(&spec["volumes"]).contains(&v), "{v} not a pod volume");
    }
    let logs = mounts
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some(log_volume))
        .unwrap();
    assert_eq!(logs["readOnly"].as_bool(), Some(true));
    assert_eq!(logs["mountPath"].as_str(), Some("/var/log/app"));
    let secret = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("scrubs-secrets"))
        .unwrap();
    assert_eq!(
        secret["secret"]["secretName"].as_str(),
        Some("scrubs-secrets")
    );
    // Every app container writes to the shared log volume.
    for c in spec["containers"].as_sequence().unwrap() {
        assert!(
            names(&c["volumeMounts"]).contains(&log_volume),
            "{:?} does not mount {log_volume}",
            c["name"]
        );
    }
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() >= 45);
    sidecar
}

#[test]
fn a_deployment_shares_its_log_volume_and_keeps_everything_else() {
    let input = std::fs::read_to_string(data("deployment.yaml")).unwrap();
    let (code, out, err) = inject(&[data("deployment.yaml").to_str().unwrap()], b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 pod template(s) injected"), "{err}");
    let before = &docs(&input)[0];
    let after = &docs(&out)[0];
    let template = get(after, "spec.template");
    // The app mounts `logs` at /var/log/app/: that volume is shared, no new one.
    assert_injected(template, "logs");
    assert!(!names(&template["spec"]["volumes"]).contains(&"scrubs-app-logs"));
    // The app's own init container still runs, after scrubs.
    assert_eq!(
        names(&template["spec"]["initContainers"]),
        ["scrubs", "migrate"]
    );
    // The app container is untouched (it already mounted the log volume).
    assert_eq!(
        get(after, "spec.template.spec.containers.0"),
        get(before, "spec.template.spec.containers.0")
    );
    // `defaultMode: 0400` (YAML 1.1 octal, as Kubernetes reads it) is kept
    // as 256, not turned into the string "0400".
    let tls = &template["spec"]["volumes"][1];
    assert_eq!(tls["secret"]["defaultMode"].as_u64(), Some(0o400));
    for key in ["metadata", "apiVersion", "kind"] {
        assert_eq!(after[key], before[key]);
    }
    assert_eq!(get(after, "spec.replicas"), get(before, "spec.replicas"));
}

#[test]
fn every_workload_kind_in_streams_and_lists_is_injected_others_pass_through() {
    for (file, kinds) in [
        ("statefulset.yaml", vec!["StatefulSet"]),
        (
            "daemonset-and-job.yaml",
            vec!["Service", "DaemonSet", "Job"],
        ),
        ("list.yaml", vec!["List"]),
        ("cronjob.yaml", vec!["CronJob"]),
    ] {
        let input = std::fs::read_to_string(data(file)).unwrap();
        let (code, out, err) = inject(&[data(file).to_str().unwrap()], b"");
        assert_eq!(code, 0, "{file}: {err}");
        let (ins, outs) = (docs(&input), docs(&out));
        assert_eq!(outs.len(), kinds.len(), "{file}: {out}");
        for ((i, o), kind) in ins.iter().zip(&outs).zip(&kinds) {
            assert_eq!(o["kind"].as_str(), Some(*kind));
            match *kind {
                "Service" => assert_eq!(i, o, "a Service passes through unchanged"),
                "List" => {
                    assert_eq!(o["items"][0], i["items"][0], "the ConfigMap is unchanged");
                    assert_eq!(o["items"][0]["data"]["mode"].as_str(), Some("0644"));
                    assert_injected(&o["items"][1]["spec"]["template"], "scrubs-app-logs");
                }
                "CronJob" => {
                    assert_injected(get(o, "spec.jobTemplate.spec.template"), "scrubs-app-logs");
                }
                _ => {
                    assert_injected(&o["spec"]["template"], "scrubs-app-logs");
                }
            }
        }
        if file == "statefulset.yaml" {
            let t = &outs[0]["spec"]["template"];
            // A longer grace period is kept; annotations are added to.
            assert_eq!(
                t["spec"]["terminationGracePeriodSeconds"].as_u64(),
                Some(120)
            );
            assert_eq!(
                t["metadata"]["annotations"]["prometheus.io/scrape"].as_str(),
                Some("true")
            );
            assert_eq!(
                outs[0]["spec"]["volumeClaimTemplates"],
                ins[0]["spec"]["volumeClaimTemplates"]
            );
        }
        if file == "daemonset-and-job.yaml" {
            // Both containers of the DaemonSet get the new log volume.
            let c = &outs[1]["spec"]["template"]["spec"]["containers"];
            assert_eq!(c.as_sequence().unwrap().len(), 2);
            assert_eq!(
                outs[2]["spec"]["template"]["spec"]["restartPolicy"].as_str(),
                Some("Never"),
                "the Job's own restart policy is kept"
            );
        }
    }
}

#[test]
fn injecting_twice_changes_nothing_and_stdin_equals_files() {
    let files = [
        "deployment.yaml",
        "statefulset.yaml",
        "daemonset-and-job.yaml",
        "list.yaml",
        "cronjob.yaml",
    ];
    let paths: Vec<String> = files
        .iter()
        .map(|f| data(f).display().to_string())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (code, once, err) = inject(&args, b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("6 pod template(s) injected"), "{err}");
    let (code, twice, err) = inject(&[], once.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 pod template(s) injected"), "{err}");
    assert_eq!(once, twice, "a second injection changed the output");
    let (code, again, _) = inject(&["-"], once.as_bytes());
    assert_eq!(code, 0);
    assert_eq!(again, once);

    // Options reach the output.
    let (code, custom, err) = inject(
        &[
            "--image",
            "registry.internal/scrubs@sha256:0123",
            "--secret",
            "visit-api-scrubs",
            "--termination-grace-period",
            "90",
            &paths[0],
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let d = &docs(&custom)[0];
    let spec = get(d, "spec.template.spec");
    assert_eq!(
        spec["initContainers"][0]["image"].as_str(),
        Some("registry.internal/scrubs@sha256:0123")
    );
    assert_eq!(spec["terminationGracePeriodSeconds"].as_u64(), Some(90));
    assert!(custom.contains("secretName: visit-api-scrubs"));
}

#[test]
fn what_cannot_be_handled_is_refused_all_at_once_and_nothing_is_written() {
    let refused = |f: &str| data(&format!("refused/{f}")).display().to_string();
    let (code, out, err) = inject(
        &[
            &data("deployment.yaml").display().to_string(),
            &refused("pod-and-broken.yaml"),
            &refused("name-taken.yaml"),
        ],
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "nothing is written: {out}");
    assert!(err.contains("3 problem(s)"), "{err}");
    for want in [
        "pod-and-broken.yaml: document 1 (Pod debug): Pod is not supported",
        "pod-and-broken.yaml: document 2 (Deployment empty): has no containers",
        "name-taken.yaml: document 1 (Deployment legacy): a container is already named 'scrubs'",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }

    let (code, out, err) = inject(&[&refused("not-yaml.yaml")], b"");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("not valid YAML") && err.contains("line 4"),
        "{err}"
    );

    let (code, out, err) = inject(&[], b"- just\n- a list\n");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("stdin: document 1 is not a Kubernetes object"),
        "{err}"
    );

    let (code, _, err) = inject(&["/nonexistent/manifest.yaml"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/manifest.yaml"), "{err}");

    // A volume name scrubs needs, used by the app for something else.
    let clash = std::fs::read_to_string(data("deployment.yaml"))
        .unwrap()
        .replace(
            "- name: tls\n          secret:",
            "- name: scrubs-data\n          secret:",
        )
        .replace(
            "- name: tls\n              mountPath",
            "- name: scrubs-data\n              mountPath",
        );
    let (code, out, err) = inject(&[], clash.as_bytes());
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("a volume is already named 'scrubs-data'"),
        "{err}"
    );
}
