#!/usr/bin/env bash
# CI for everything under deploy/ (issue 11): the Dockerfile, the image's
# binary, the Helm chart, the plain manifests, `scrubs inject`'s output and
# the Prometheus alert rules. `.ci/run` calls it after the test suite.
#
#   bash scripts/check-deploy.sh
#
# Tools come from the Go module proxy and are built once into
# $SCRUBS_DEPLOY_CACHE (default $HOME/.cache/scrubs-deploy/bin), keyed by
# version, so a second run only checks:
#   helm      helm.sh/helm/v4/cmd/helm                      (helm lint, helm template)
#   promtool  github.com/prometheus/prometheus/cmd/promtool (check rules, test rules)
#   kubecheck deploy/tools/kubecheck: strict decoding against k8s.io/api
#   dockerfile-lint deploy/tools/dockerfile-lint: BuildKit's Dockerfile checks
# A fresh machine needs Go and the proxy; the first run takes several
# minutes to build helm and promtool.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# No VCS stamping of the small tools built from this checkout (a CI clone
# may have no usable git metadata for go to read).
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
HELM_VERSION=v4.3.2
PROMETHEUS_VERSION=v0.316.0
bin="${SCRUBS_DEPLOY_CACHE:-$HOME/.cache/scrubs-deploy/bin}"
mkdir -p "$bin"
work="$(mktemp -d)"
trap '[[ -n "${SCRUBS_DEPLOY_KEEP:-}" ]] && echo "kept $work" || rm -rf "$work"' EXIT
step() { echo; echo "== check-deploy: $*"; }

# go install PKG@VERSION into $bin, unless that version is there already.
tool() {
    local name="$1" pkg="$2" version="$3"
    if [[ -x "$bin/$name" && -f "$bin/.$name-$version" ]]; then
        return
    fi
    step "building $name $version from the Go module proxy"
    GOBIN="$bin" nice -n 5 go install "$pkg@$version"
    rm -f "$bin/.$name-"*
    touch "$bin/.$name-$version"
}
tool helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION"
tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
helm="$bin/helm"
promtool="$bin/promtool"

step "kubecheck and dockerfile-lint: go test (a misspelled field and a bad Dockerfile must fail), go build"
for t in kubecheck dockerfile-lint; do
    (cd "deploy/tools/$t" && nice -n 5 go test ./... && nice -n 5 go build -o "$bin/$t" .)
done
kubecheck="$bin/kubecheck"

step "Dockerfile: BuildKit's checks"
"$bin/dockerfile-lint" Dockerfile

step "the image's binary: scripts/build-image-binary.sh"
bash scripts/build-image-binary.sh "$work/image"
scrubs() { LD_LIBRARY_PATH="$work/image/lib" "$work/image/bin/scrubs" "$@"; }

chart=deploy/helm/scrubs
step "helm lint"
"$helm" lint --strict "$chart"
"$helm" lint --strict "$chart" --set workload.kind=StatefulSet

step "helm template: default values, and a StatefulSet with rules and a rendered Secret, decoded strictly"
"$helm" template visit-api "$chart" --namespace telehealth > "$work/default.yaml"
"$helm" template visit-api "$chart" --namespace telehealth \
    --set workload.kind=StatefulSet \
    --set-string scrubs.rules.custom\\.yaml='rules: []' \
    --set scrubs.createSecret.enabled=true \
    --set-string scrubs.createSecret.data.spool\\.key=c2VjcmV0 > "$work/statefulset.yaml"
"$kubecheck" "$work/default.yaml" "$work/statefulset.yaml"
grep -q 'kind: StatefulSet' "$work/statefulset.yaml"
grep -q 'volumeClaimTemplates' "$work/statefulset.yaml"
grep -q 'kind: Secret' "$work/statefulset.yaml"

step "deploy/kubernetes/visit-api.yaml is the chart's rendering"
if ! diff -u deploy/kubernetes/visit-api.yaml "$work/default.yaml"; then
    echo "deploy/kubernetes/visit-api.yaml is stale: helm template visit-api $chart --namespace telehealth > deploy/kubernetes/visit-api.yaml" >&2
    exit 1
fi
"$kubecheck" deploy/kubernetes/*.yaml

step "the chart's scrubs.yaml passes scrubs validate"
# The ConfigMap's scrubs.yaml, with the Secret's mount point replaced by a
# directory of generated files, since validate reads the key files.
mkdir -p "$work/secrets"
for f in pseudonym.key spool.key chain.key kafka-password acme-api-key; do
    head -c 48 /dev/urandom | base64 > "$work/secrets/$f"
done
# The secret volume's mode (defaultMode: 0440); validate refuses keys that
# other users can read.
chmod 0440 "$work/secrets"/*
# Any PEM bundle will do for the CA file librdkafka loads at start-up.
cp /etc/ssl/certs/ca-certificates.crt "$work/secrets/kafka-ca.pem"
for rendered in default statefulset; do
    "$helm" template visit-api "$chart" --show-only templates/configmap.yaml \
        $( [[ $rendered == statefulset ]] && echo --set-string scrubs.rules.custom\\.yaml=x ) \
        | awk '/^  scrubs.yaml: \|/{on=1; next} on && /^    /{sub(/^    /, ""); print; next} on && !/^    /{on=0}' \
        | sed "s#/etc/scrubs/secrets#$work/secrets#g; s#/etc/scrubs/rules#$work/rules#g; s#/var/lib/scrubs#$work/data#g; s#/var/log/app#$work/app-logs#g" \
        > "$work/scrubs-$rendered.yaml"
done
mkdir -p "$work/rules" "$work/app-logs"
printf 'rules:\n  - id: local.badge\n    category: other_identifier\n    detector: {token: {pattern: "BDG[0-9]{6}"}}\n' > "$work/rules/custom.yaml"
scrubs validate --config "$work/scrubs-default.yaml"
scrubs validate --config "$work/scrubs-statefulset.yaml"

step "rehearsal: the image's binary runs the chart's scrubs.yaml as in a pod, with Kafka and the vendor down"
# The pod's paths moved under $work, the admin and OTLP ports to free
# loopback ports, Kafka and the vendor to a closed loopback port: probes
# and metrics answer (/readyz too: neither a vendor nor Kafka being down
# makes scrubs unready), the log is JSON, an audit line is spooled
# encrypted, and SIGTERM ends the process, exit 0, within the drain
# deadline (one deadline for every sink) and so within the grace period.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
admin_port="$(free_port)"
grace="$(grep -m1 -o 'terminationGracePeriodSeconds: [0-9]*' "$work/default.yaml" | grep -o '[0-9]*$')"
drain="$(grep -m1 -o 'drain_deadline: [0-9]*s' "$work/scrubs-default.yaml" | grep -o '[0-9]*')"
mkdir -p "$work/pod/logs" "$work/pod/data"
sed "s#$work/data#$work/pod/data#g; s#$work/app-logs#$work/pod/logs#g; s#0.0.0.0:9600#127.0.0.1:$admin_port#;
     s#127.0.0.1:4318#127.0.0.1:$(free_port)#; s#127.0.0.1:4317#127.0.0.1:$(free_port)#;
     s#brokers: .*#brokers: 127.0.0.1:1#; s#endpoint: .*#endpoint: http://127.0.0.1:1#" \
    "$work/scrubs-default.yaml" > "$work/pod/scrubs.yaml"
echo '{"level":"info","msg":"chart opened","audit":"true","patient_id":"p-1","patient_name":"Maria Gonzalez"}' > "$work/pod/logs/app.log"
LD_LIBRARY_PATH="$work/image/lib" "$work/image/bin/scrubs" run --config "$work/pod/scrubs.yaml" 2> "$work/pod/stderr" &
pod_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$admin_port/healthz" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$admin_port/healthz" >/dev/null
# The admin endpoint answers /healthz from the start and /readyz once the
# pipeline is built, some milliseconds later: wait for it as the kubelet
# would (asking once right after /healthz answered failed when the first
# /healthz came in that window).
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null
curl -sf "http://127.0.0.1:$admin_port/metrics" > "$work/pod/metrics"
grep -q '^scrubs_config_last_reload_successful 1$' "$work/pod/metrics"
grep -q '^scrubs_audit_spool_limit_bytes 268435456$' "$work/pod/metrics"
sleep 2
start=$(date +%s)
kill -TERM "$pod_pid"
rc=0
wait "$pod_pid" || rc=$?
took=$(( $(date +%s) - start ))
echo "SIGTERM to exit: ${took} s (exit $rc; drain deadline ${drain} s, grace period ${grace} s)"
python3 -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$work/pod/stderr"
grep -q 'stopped with data not delivered' "$work/pod/stderr"
if (( rc != 0 || took > drain + 1 || took >= grace )); then
    echo "scrubs did not exit 0 within the drain deadline and the grace period" >&2
    tail -20 "$work/pod/stderr" >&2
    exit 1
fi
spool="$work/pod/data/audit/audit.spool"
if [[ ! -s "$spool" ]] || grep -q 'Maria Gonzalez' "$spool"; then
    echo "the audit line is not in the spool, or is readable there" >&2
    exit 1
fi
if grep -q 'Maria Gonzalez' "$work/pod/stderr"; then
    echo "PHI in scrubs' log" >&2
    exit 1
fi

step "scrubs inject: the test manifests and their injected form decode strictly; a second pass changes nothing"
"$kubecheck" tests/data/k8s/*.yaml
scrubs inject tests/data/k8s/*.yaml > "$work/injected.yaml"
"$kubecheck" "$work/injected.yaml"
scrubs inject "$work/injected.yaml" > "$work/injected-twice.yaml"
cmp "$work/injected.yaml" "$work/injected-twice.yaml"

step "Prometheus rules: promtool check rules, test rules"
"$promtool" check rules deploy/prometheus/scrubs-alerts.yaml
(cd deploy/prometheus && "$promtool" test rules scrubs-alerts.test.yaml)
"$promtool" check rules deploy/prometheus/telehealth-slo.yaml
(cd deploy/prometheus && "$promtool" test rules telehealth-slo.test.yaml)
# Every telehealth metric the SLO rules use is one the signals preset
# defines (counters end in _total; histograms add _bucket and _count;
# call-minutes are _total and _good_total of one name).
for m in $(grep -o 'telehealth_[a-z_]*' deploy/prometheus/telehealth-slo.yaml | sort -u); do
    base=$(echo "$m" | sed -E 's/_(bucket|count|sum)$//; s/_good_total$//; s/_total$//')
    if ! grep -q "\"$base" src/signals/preset.rs; then
        echo "deploy/prometheus/telehealth-slo.yaml uses $m, which the signals preset does not define" >&2
        exit 1
    fi
done
# Every scrubs metric the rules use is one scrubs exports.
for m in $(grep -o 'scrubs_[a-z_]*' deploy/prometheus/scrubs-alerts.yaml | sort -u); do
    if ! grep -rq "\"$m\"" src/; then
        echo "deploy/prometheus/scrubs-alerts.yaml uses $m, which src/ does not export" >&2
        exit 1
    fi
done

step "all deploy checks passed"
