//! `scrubs inject`: adds the scrubs sidecar to Kubernetes workloads, as
//! `linkerd inject` adds its proxy.
//!
//! It reads YAML (files, or stdin), finds the pod template of every
//! Deployment, StatefulSet, DaemonSet, Job and CronJob (alone, in a
//! multi-document stream, or in a `List`), and adds:
//!
//! - scrubs as a native sidecar: an init container with `restartPolicy:
//!   Always` (Kubernetes 1.29 and later), first among the init containers,
//!   so that it starts before and stops after every other container;
//! - the app's log directory (`--log-dir`) as a volume shared with scrubs,
//!   read-only on scrubs' side: the volume an app container already mounts
//!   there, or a new `emptyDir` mounted there in every app container;
//! - the configuration ConfigMap (`scrubs.yaml`), the optional rules
//!   ConfigMap and the Secret (pseudonym key, spool key, Kafka and vendor
//!   credentials) as file mounts: no secret goes into an environment
//!   variable;
//! - an `emptyDir` for checkpoints and the audit spool;
//! - probes on the admin port (`/readyz` for start-up and readiness,
//!   `/healthz` for liveness), requests and limits, a locked-down security
//!   context, and a termination grace period longer than the drain
//!   deadline.
//!
//! Injecting twice changes nothing: a pod template that already carries the
//! `scrubs.io/injected` annotation and the `scrubs` init container is
//! written back as it is. Other resources (Services, ConfigMaps, ...) pass
//! through unchanged. What it cannot handle safely is refused, every
//! problem at once, and nothing is written: other kinds with a pod template
//! (Pod, ReplicaSet, ...), a workload without containers, a
//! container or volume name that scrubs needs already in use, YAML that
//! does not parse.
//!
//! YAML is read as YAML 1.2 and written back with the same keys in the same
//! order; comments are not kept (as with `kubectl` and `linkerd inject`).
//! A file mode written as a YAML 1.1 octal (`defaultMode: 0400`, which
//! Kubernetes reads as octal) is converted to its number, not left as the
//! string YAML 1.2 would make of it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize as _;
use serde_yaml::{Mapping, Value};

use super::CliError;

/// The sidecar container's name.
const SIDECAR: &str = "scrubs";
/// The pod template annotation that marks an injected workload; its value
/// is the version of scrubs that injected it.
const ANNOTATION: &str = "scrubs.io/injected";
const CONFIG_VOLUME: &str = "scrubs-config";
const RULES_VOLUME: &str = "scrubs-rules";
const SECRETS_VOLUME: &str = "scrubs-secrets";
const DATA_VOLUME: &str = "scrubs-data";
const LOGS_VOLUME: &str = "scrubs-app-logs";
/// Where the sidecar sees things; the Helm chart uses the same paths.
/// Sibling directories, not mounts nested in the ConfigMap's: the kubelet
/// rewrites a ConfigMap volume on every update, and a mount point inside
/// it is not its to keep.
const CONFIG_DIR: &str = "/etc/scrubs/config";
const RULES_DIR: &str = "/etc/scrubs/rules";
const SECRETS_DIR: &str = "/etc/scrubs/secrets";
const DATA_DIR: &str = "/var/lib/scrubs";
const LOGS_DIR: &str = "/var/log/app";
/// The workload kinds whose pod template is injected.
const KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"];
/// Kinds that have pods but are refused: a Pod or ReplicaSet changed
/// directly is replaced by its owner's template on the next rollout, so the
/// sidecar would silently go away.
const REFUSED_KINDS: &[&str] = &["Pod", "PodTemplate", "ReplicaSet", "ReplicationController"];

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Manifests to read; `-` or none reads stdin. The result goes to
    /// stdout, documents in input order.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The scrubs image.
    #[arg(long, value_name = "IMAGE", default_value = concat!("scrubs:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// The ConfigMap holding `scrubs.yaml`.
    #[arg(long, value_name = "NAME", default_value = "scrubs-config")]
    config_map: String,
    /// An optional ConfigMap of rule files, mounted at /etc/scrubs/rules
    /// (the pod starts without it).
    #[arg(long, value_name = "NAME", default_value = "scrubs-rules")]
    rules_config_map: String,
    /// The Secret holding key files and credentials, mounted at
    /// /etc/scrubs/secrets.
    #[arg(long, value_name = "NAME", default_value = "scrubs-secrets")]
    secret: String,
    /// The directory the app writes its log files to. An app container's
    /// volume mounted there is shared; otherwise an emptyDir is mounted
    /// there in every app container. scrubs sees it at /var/log/app.
    #[arg(long, value_name = "PATH", default_value = "/var/log/app")]
    log_dir: String,
    /// The admin port (probes and metrics) named in scrubs.yaml
    /// (`admin.address`, e.g. "0.0.0.0:9600").
    #[arg(long, value_name = "PORT", default_value_t = 9600)]
    admin_port: u16,
    /// The pod's minimum termination grace period in seconds: longer than
    /// scrubs.yaml's `shutdown.drain_deadline` (default 30s). A longer
    /// period already in the pod is kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 45)]
    termination_grace_period: u64,
}

/// One problem, naming where it is (file, document number, kind and name).
type Problem = String;

pub fn run(args: InjectArgs) -> Result<ExitCode, CliError> {
    let inputs: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let mut out = String::new();
    let mut problems = Vec::new();
    let mut injected = 0usize;
    for input in &inputs {
        let (name, text) = if input.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            ("stdin".to_string(), s)
        } else {
            let s = std::fs::read_to_string(input)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", input.display())))?;
            (input.display().to_string(), s)
        };
        match inject_text(&text, &args) {
            Ok(done) => {
                for (doc, n) in done {
                    injected += n;
                    if !out.is_empty() {
                        out.push_str("---\n");
                    }
                    out.push_str(&doc);
                }
            }
            Err(found) => problems.extend(found.into_iter().map(|p| format!("{name}: {p}"))),
        }
    }
    if !problems.is_empty() {
        eprintln!(
            "scrubs: inject: {} problem(s); nothing was written",
            problems.len()
        );
        for p in problems {
            eprintln!("  {p}");
        }
        return Ok(ExitCode::from(2));
    }
    std::io::stdout().write_all(out.as_bytes())?;
    eprintln!("scrubs: inject: {injected} pod template(s) injected");
    Ok(ExitCode::SUCCESS)
}

/// Injects every document of a YAML stream. Returns each document's YAML
/// and how many pod templates it injected, or every problem found.
fn inject_text(text: &str, args: &InjectArgs) -> Result<Vec<(String, usize)>, Vec<Problem>> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let mut doc = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                // The parser's message gives the line and column; it can
                // quote the text, which in a manifest is not event content.
                problems.push(format!("document {n}: not valid YAML: {e}"));
                // A syntax error ends the stream: the parser cannot resync.
                break;
            }
        };
        if doc.is_null() {
            continue;
        }
        fix_volume_modes(&mut doc);
        match inject_doc(&mut doc, args) {
            Ok(count) => match serde_yaml::to_string(&doc) {
                Ok(s) => docs.push((s, count)),
                Err(e) => problems.push(format!("document {n}: cannot be written back: {e}")),
            },
            Err(found) => {
                problems.extend(found.into_iter().map(|p| format!("document {n} {p}")));
            }
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// `Kind name` of an object, for messages.
fn describe(obj: &Mapping) -> String {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("(no kind)");
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    format!("({kind} {name})")
}

/// Injects one document: a workload, a List of objects, or anything else
/// (passed through).
fn inject_doc(doc: &mut Value, args: &InjectArgs) -> Result<usize, Vec<Problem>> {
    let Some(obj) = doc.as_mapping_mut() else {
        return Err(vec![
            "is not a Kubernetes object (a YAML mapping with apiVersion and kind)".into(),
        ]);
    };
    let kind = obj.get("kind").and_then(Value::as_str).map(str::to_string);
    if kind.as_deref() == Some("List") || kind.as_deref().is_some_and(|k| k.ends_with("List")) {
        let Some(items) = obj.get_mut("items").and_then(Value::as_sequence_mut) else {
            return Ok(0);
        };
        let mut problems = Vec::new();
        let mut count = 0;
        for (i, item) in items.iter_mut().enumerate() {
            match item.as_mapping_mut() {
                Some(m) => match inject_object(m, args) {
                    Ok(n) => count += n,
                    Err(p) => problems.push(format!("items[{i}] {}: {p}", describe(m))),
                },
                None => problems.push(format!("items[{i}]: is not an object")),
            }
        }
        return if problems.is_empty() {
            Ok(count)
        } else {
            Err(problems)
        };
    }
    let what = describe(obj);
    inject_object(obj, args).map_err(|p| vec![format!("{what}: {p}")])
}

/// Injects one object's pod template. Returns 1 if it was injected now, 0
/// if it is not a workload or was injected before.
fn inject_object(obj: &mut Mapping, args: &InjectArgs) -> Result<usize, String> {
    let Some(kind) = obj.get("kind").and_then(Value::as_str).map(str::to_string) else {
        return Err("has no kind".into());
    };
    let kind = kind.as_str();
    if REFUSED_KINDS.contains(&kind) {
        return Err(format!(
            "{kind} is not supported: its pods are replaced from their owner's template, so inject the owner (one of {})",
            KINDS.join(", ")
        ));
    }
    if !KINDS.contains(&kind) {
        return Ok(0);
    }
    let mut spec = obj.get_mut("spec").and_then(Value::as_mapping_mut);
    let mut where_ = "spec.template";
    if kind == "CronJob" {
        where_ = "spec.jobTemplate.spec.template";
        spec = spec
            .and_then(|s| s.get_mut("jobTemplate"))
            .and_then(Value::as_mapping_mut)
            .and_then(|j| j.get_mut("spec"))
            .and_then(Value::as_mapping_mut);
    }
    let template = spec
        .and_then(|s| s.get_mut("template"))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| format!("has no {where_}"))?;
    inject_template(template, args)
}

/// Looks up `key` in `m`, inserting an empty mapping if absent; an error if
/// it is there but not a mapping (`null` counts as absent).
fn map_entry<'a>(m: &'a mut Mapping, key: &str, path: &str) -> Result<&'a mut Mapping, String> {
    let v = m
        .entry(Value::from(key))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if v.is_null() {
        *v = Value::Mapping(Mapping::new());
    }
    v.as_mapping_mut()
        .ok_or_else(|| format!("{path} is not a mapping"))
}

/// As [`map_entry`], for a sequence.
fn seq_entry<'a>(m: &'a mut Mapping, key: &str, path: &str) -> Result<&'a mut Vec<Value>, String> {
    let v = m
        .entry(Value::from(key))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if v.is_null() {
        *v = Value::Sequence(Vec::new());
    }
    v.as_sequence_mut()
        .ok_or_else(|| format!("{path} is not a list"))
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn inject_template(template: &mut Mapping, args: &InjectArgs) -> Result<usize, String> {
    let already = template
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(ANNOTATION))
        .is_some();
    let spec = template
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or("has no spec.template.spec")?;
    let has_sidecar = spec
        .get("initContainers")
        .and_then(Value::as_sequence)
        .is_some_and(|s| s.iter().any(|c| name_of(c) == Some(SIDECAR)));
    if already && has_sidecar {
        return Ok(0);
    }
    let containers = spec
        .get("containers")
        .and_then(Value::as_sequence)
        .filter(|c| !c.is_empty())
        .ok_or("has no containers in spec.template.spec.containers")?;
    if containers.iter().any(|c| name_of(c).is_none()) {
        return Err("a container in spec.template.spec.containers has no name".into());
    }
    let taken: Vec<&str> = containers
        .iter()
        .chain(
            spec.get("initContainers")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten(),
        )
        .filter_map(name_of)
        .collect();
    if taken.contains(&SIDECAR) {
        return Err(format!(
            "a container is already named '{SIDECAR}' but the pod template has no {ANNOTATION} annotation; rename it or remove it"
        ));
    }
    // The volume the app writes its logs to: one an app container mounts at
    // --log-dir, or a new emptyDir.
    let log_dir = args.log_dir.trim_end_matches('/');
    let log_dir = if log_dir.is_empty() { "/" } else { log_dir };
    let mut log_volume: Option<String> = None;
    for c in containers {
        for m in c
            .get("volumeMounts")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let path = m.get("mountPath").and_then(Value::as_str).unwrap_or("");
            if path.trim_end_matches('/') == log_dir {
                if let Some(v) = name_of(m) {
                    match &log_volume {
                        Some(seen) if seen != v => {
                            return Err(format!(
                            "app containers mount different volumes ('{seen}', '{v}') at {log_dir}"
                        ))
                        }
                        _ => log_volume = Some(v.to_string()),
                    }
                }
            }
        }
    }
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let ours = [
        CONFIG_VOLUME,
        RULES_VOLUME,
        SECRETS_VOLUME,
        DATA_VOLUME,
        LOGS_VOLUME,
    ];
    for v in &volumes {
        if let Some(n) = name_of(v) {
            if ours.contains(&n) && log_volume.as_deref() != Some(n) {
                return Err(format!(
                    "a volume is already named '{n}'; scrubs inject needs that name"
                ));
            }
        }
    }

    // Pod-level changes.
    let new_log_volume = log_volume.is_none();
    let log_volume = log_volume.unwrap_or_else(|| LOGS_VOLUME.to_string());
    if new_log_volume {
        let containers = seq_entry(spec, "containers", "spec.template.spec.containers")?;
        for c in containers.iter_mut() {
            let c = c.as_mapping_mut().ok_or("a container is not a mapping")?;
            seq_entry(c, "volumeMounts", "volumeMounts")?.push(yaml(&format!(
                "name: {LOGS_VOLUME}\nmountPath: {}\n",
                quote(log_dir)
            )));
        }
    }
    let volumes = seq_entry(spec, "volumes", "spec.template.spec.volumes")?;
    if new_log_volume {
        volumes.push(yaml(&format!("name: {LOGS_VOLUME}\nemptyDir: {{}}\n")));
    }
    volumes.push(yaml(&format!(
        "name: {CONFIG_VOLUME}\nconfigMap:\n  name: {}\n",
        quote(&args.config_map)
    )));
    volumes.push(yaml(&format!(
        "name: {RULES_VOLUME}\nconfigMap:\n  name: {}\n  optional: true\n",
        quote(&args.rules_config_map)
    )));
    // 0440 with the scrubs container's group 0: the kubelet creates the
    // files owned by root:root (without an fsGroup, which inject does not
    // impose on the app's pod), so group read lets the non-root user read
    // them, and scrubs refuses secret files that other users can read.
    volumes.push(yaml(&format!(
        "name: {SECRETS_VOLUME}\nsecret:\n  secretName: {}\n  defaultMode: 0o440\n",
        quote(&args.secret)
    )));
    // The spool lives as long as the pod (README, "Deploy on Kubernetes").
    volumes.push(yaml(&format!(
        "name: {DATA_VOLUME}\nemptyDir:\n  sizeLimit: 512Mi\n"
    )));
    let init = seq_entry(spec, "initContainers", "spec.template.spec.initContainers")?;
    init.insert(0, sidecar(args, &log_volume));
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    if grace < args.termination_grace_period {
        spec.insert(
            Value::from("terminationGracePeriodSeconds"),
            Value::from(args.termination_grace_period),
        );
    }
    let meta = map_entry(template, "metadata", "spec.template.metadata")?;
    let ann = map_entry(meta, "annotations", "spec.template.metadata.annotations")?;
    ann.insert(
        Value::from(ANNOTATION),
        Value::from(env!("CARGO_PKG_VERSION")),
    );
    Ok(1)
}

/// The sidecar container.
fn sidecar(args: &InjectArgs, log_volume: &str) -> Value {
    let port = args.admin_port;
    yaml(&format!(
        r#"name: {SIDECAR}
image: {image}
restartPolicy: Always
args: ["run", "--config", "{CONFIG_DIR}/scrubs.yaml"]
env:
  - name: MALLOC_ARENA_MAX
    value: "2"
ports:
  - name: scrubs-admin
    containerPort: {port}
    protocol: TCP
startupProbe:
  httpGet: {{ path: /readyz, port: scrubs-admin }}
  periodSeconds: 2
  failureThreshold: 60
readinessProbe:
  httpGet: {{ path: /readyz, port: scrubs-admin }}
  periodSeconds: 10
  failureThreshold: 3
livenessProbe:
  httpGet: {{ path: /healthz, port: scrubs-admin }}
  periodSeconds: 10
  failureThreshold: 6
resources:
  requests: {{ cpu: 100m, memory: 64Mi }}
  limits: {{ cpu: "1", memory: 128Mi }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  # Group 0 reads the secret volume (mode 0440, owned by root:root).
  runAsGroup: 0
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: {{ drop: ["ALL"] }}
  seccompProfile: {{ type: RuntimeDefault }}
volumeMounts:
  - {{ name: {log_volume}, mountPath: {LOGS_DIR}, readOnly: true }}
  - {{ name: {CONFIG_VOLUME}, mountPath: {CONFIG_DIR}, readOnly: true }}
  - {{ name: {RULES_VOLUME}, mountPath: {RULES_DIR}, readOnly: true }}
  - {{ name: {SECRETS_VOLUME}, mountPath: {SECRETS_DIR}, readOnly: true }}
  - {{ name: {DATA_VOLUME}, mountPath: {DATA_DIR} }}
"#,
        image = quote(&args.image),
        log_volume = quote(log_volume),
    ))
}

/// Parses YAML written in this file.
fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("scrubs inject's own YAML parses")
}

/// A YAML double-quoted scalar (names and paths from the command line or
/// the manifest).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Applies [`fix_octal_modes`] to every `volumes` list in a document (pod
/// specs, wherever they are), and nowhere else: a ConfigMap's `data` may
/// hold a string "0644" that must stay a string.
fn fix_volume_modes(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                if k.as_str() == Some("volumes") && val.is_sequence() {
                    fix_octal_modes(val);
                } else {
                    fix_volume_modes(val);
                }
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(fix_volume_modes),
        _ => {}
    }
}

/// `defaultMode` and `mode` of volumes written as YAML 1.1 octals (`0400`)
/// are strings in YAML 1.2; Kubernetes (YAML 1.1) reads them as octal
/// numbers. Turn them into those numbers so the meaning is kept.
fn fix_octal_modes(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let is_mode = matches!(k.as_str(), Some("defaultMode") | Some("mode"));
                if is_mode {
                    if let Some(s) = val.as_str() {
                        let octal = s.len() > 1
                            && s.starts_with('0')
                            && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
                        if let (true, Ok(n)) = (octal, u64::from_str_radix(s, 8)) {
                            *val = Value::from(n);
                            continue;
                        }
                    }
                }
                fix_octal_modes(val);
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(fix_octal_modes),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InjectArgs {
        InjectArgs {
            files: Vec::new(),
            image: "registry.example/scrubs:0.1.0".into(),
            config_map: "scrubs-config".into(),
            rules_config_map: "scrubs-rules".into(),
            secret: "scrubs-secrets".into(),
            log_dir: "/var/log/app".into(),
            admin_port: 9600,
            termination_grace_period: 45,
        }
    }

    #[test]
    fn octal_modes_keep_their_meaning() {
        let mut v: Value = serde_yaml::from_str(
            "spec:\n  volumes:\n  - secret: {defaultMode: 0400, items: [{key: a, path: a, mode: 0644}]}\n  - configMap: {defaultMode: 420}\ndata: {mode: '0644'}\n",
        )
        .unwrap();
        fix_volume_modes(&mut v);
        let out = serde_yaml::to_string(&v).unwrap();
        assert!(out.contains("defaultMode: 256"), "{out}");
        assert!(out.contains("mode: 420"), "{out}");
        assert!(out.contains("defaultMode: 420"), "{out}");
        assert!(
            out.contains("mode: '0644'"),
            "a ConfigMap's data stays: {out}"
        );
    }

    #[test]
    fn a_second_injection_changes_nothing() {
        let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: nginx}]\n";
        let once = inject_text(input, &args()).unwrap();
        assert_eq!(once[0].1, 1);
        let twice = inject_text(&once[0].0, &args()).unwrap();
        assert_eq!(twice[0].1, 0);
        assert_eq!(once[0].0, twice[0].0);
    }
}
