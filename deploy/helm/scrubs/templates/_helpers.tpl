{{/* Names and labels. */}}
{{- define "scrubs.name" -}}
{{- .Values.app.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scrubs.labels" -}}
app.kubernetes.io/name: {{ include "scrubs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "scrubs.selector" -}}
app.kubernetes.io/name: {{ include "scrubs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scrubs.configMap" -}}
{{- printf "%s-scrubs" (include "scrubs.name" .) -}}
{{- end -}}

{{- define "scrubs.rulesConfigMap" -}}
{{- printf "%s-scrubs-rules" (include "scrubs.name" .) -}}
{{- end -}}

{{/*
scrubs.yaml: the operator's config with the fields that must match the pod
set by the chart (they win over the same keys in .Values.scrubs.config).
*/}}
{{- define "scrubs.config" -}}
{{- $s := .Values.scrubs -}}
{{- $owned := dict
  "data_dir" "/var/lib/scrubs"
  "admin" (dict "address" (printf "0.0.0.0:%v" $s.adminPort))
  "shutdown" (dict "drain_deadline" (printf "%vs" $s.drainDeadlineSeconds)) -}}
{{- if $s.pseudonymKeyFile -}}
{{- $_ := set $owned "pseudonym_key_file" (printf "/etc/scrubs/secrets/%s" $s.pseudonymKeyFile) -}}
{{- end -}}
{{- $rules := dict "builtin" true -}}
{{- if $s.rules -}}
{{- $_ := set $rules "files" (list "/etc/scrubs/rules") -}}
{{- end -}}
{{- $_ := set $owned "rules" $rules -}}
{{- toYaml (merge $owned (deepCopy $s.config)) -}}
{{- end -}}

{{/* The scrubs native sidecar. */}}
{{- define "scrubs.sidecar" -}}
{{- $s := .Values.scrubs -}}
- name: scrubs
  image: {{ $s.image | quote }}
  imagePullPolicy: {{ $s.imagePullPolicy }}
  # A native sidecar: started before the app containers (after its
  # startupProbe passes) and stopped after them.
  restartPolicy: Always
  args: ["run", "--config", "/etc/scrubs/config/scrubs.yaml"]
  env:
    - name: MALLOC_ARENA_MAX
      value: "2"
  ports:
    - name: scrubs-admin
      containerPort: {{ $s.adminPort }}
      protocol: TCP
  startupProbe:
    httpGet: {path: /readyz, port: scrubs-admin}
    periodSeconds: 2
    failureThreshold: 60
  readinessProbe:
    httpGet: {path: /readyz, port: scrubs-admin}
    periodSeconds: 10
    failureThreshold: 3
  livenessProbe:
    httpGet: {path: /healthz, port: scrubs-admin}
    periodSeconds: 10
    failureThreshold: 6
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    # Group 0 reads the secret volume (mode 0440, owned by root:root
    # without a pod fsGroup); scrubs refuses keys other users can read.
    runAsGroup: 0
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: {drop: ["ALL"]}
    seccompProfile: {type: RuntimeDefault}
  volumeMounts:
    - {name: app-logs, mountPath: /var/log/app, readOnly: true}
    - {name: scrubs-config, mountPath: /etc/scrubs/config, readOnly: true}
    {{- if $s.rules }}
    - {name: scrubs-rules, mountPath: /etc/scrubs/rules, readOnly: true}
    {{- end }}
    - {name: scrubs-secrets, mountPath: /etc/scrubs/secrets, readOnly: true}
    - {name: scrubs-data, mountPath: /var/lib/scrubs}
{{- end -}}
