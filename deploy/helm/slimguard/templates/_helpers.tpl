{{/* Names and labels shared by every template. */}}

{{- define "slimguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slimguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "slimguard.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "slimguard.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "slimguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slimguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slimguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "slimguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slimguard
{{- end }}

{{- define "slimguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "slimguard.controllerName" -}}
{{- printf "%s-controller" (include "slimguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slimguard.webhookName" -}}
{{- printf "%s-webhook" (include "slimguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slimguard.webhookTLSSecret" -}}
{{- default (printf "%s-webhook-tls" (include "slimguard.fullname" .)) .Values.webhook.tls.secretName }}
{{- end }}

{{/*
How the webhook gets its serving certificate (webhook.certificates.mode), validated: self-managed (the webhook
makes and rotates its own, nothing secret rendered), cert-manager, or provided (your Secret and its CA).
*/}}
{{- define "slimguard.certificateMode" -}}
{{- $mode := toString .Values.webhook.certificates.mode }}
{{- if (.Values.certManager | default dict).enabled }}
{{- fail "certManager.enabled is gone: set webhook.certificates.mode=cert-manager (certManager.issuerRef, duration and renewBefore still apply)" }}
{{- end }}
{{- if not (has $mode (list "self-managed" "cert-manager" "provided")) }}
{{- fail (printf "webhook.certificates.mode must be self-managed, cert-manager or provided; got %q" $mode) }}
{{- end }}
{{- if and (eq $mode "provided") (not .Values.webhook.tls.caBundle) }}
{{- fail "webhook.certificates.mode=provided needs webhook.tls.caBundle: the base64 PEM of the CA that signed the certificate in webhook.tls.secretName" }}
{{- end }}
{{- $mode }}
{{- end }}

{{/* Registry flags, the same for both components. */}}
{{- define "slimguard.registryArgs" -}}
{{- if .Values.registries.allowPrivate }}
- --allow-private-registries
{{- end }}
{{- range .Values.registries.allowlist }}
- --registry={{ . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.registries.tagTtlSeconds) }}
- --tag-ttl={{ .Values.registries.tagTtlSeconds }}
{{- end }}
{{- if not (kindIs "invalid" .Values.registries.tagMaxStaleSeconds) }}
- --tag-max-stale={{ .Values.registries.tagMaxStaleSeconds }}
{{- end }}
{{- range .Values.trustedReportNamespaces }}
- --trusted-report-namespaces={{ . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.reportPageSize) }}
- --report-page-size={{ .Values.reportPageSize }}
{{- end }}
{{- if include "slimguard.registryCaSource" . }}
- --ca-file=/etc/slimguard/registry-ca/{{ include "slimguard.registryCaKey" . }}
{{- end }}
{{- range .Values.registries.extraCaFiles }}
- --ca-file={{ . }}
{{- end }}
{{- with .Values.registries.proxy }}
{{- if .httpsProxy }}
- {{ printf "--https-proxy=%s" .httpsProxy | quote }}
{{- end }}
{{- if .httpProxy }}
- {{ printf "--http-proxy=%s" .httpProxy | quote }}
{{- end }}
{{- range .noProxy }}
- {{ printf "--no-proxy=%s" . | quote }}
{{- end }}
{{- end }}
{{- if include "slimguard.credentialProviders" . }}
- --image-credential-provider-config={{ .Values.registries.credentialProviders.config }}
- --image-credential-provider-bin-dir={{ .Values.registries.credentialProviders.binDir }}
{{- end }}
{{- end }}

{{/*
The kubelet's credential providers (registries.credentialProviders): "on" when configured, "" when not; config
without binDir (or the other way round) fails the render, as the flags go together.
*/}}
{{- define "slimguard.credentialProviders" -}}
{{- $c := .Values.registries.credentialProviders }}
{{- if or $c.config $c.binDir }}
{{- if not (and $c.config $c.binDir) }}
{{- fail (printf "registries.credentialProviders: set both config and binDir (the kubelet's --image-credential-provider-config and --image-credential-provider-bin-dir), or neither; got config=%q binDir=%q" $c.config $c.binDir) }}
{{- end }}
{{- print "on" }}
{{- end }}
{{- end }}

{{/* With mount hostPath: the node's configuration and bin directory, read-only, at the same paths ("" else). */}}
{{- define "slimguard.credentialProviderVolumes" -}}
{{- $c := .Values.registries.credentialProviders }}
{{- if and (include "slimguard.credentialProviders" .) (eq $c.mount "hostPath") }}
- name: credential-provider-config
  hostPath:
    path: {{ $c.config }}
    type: {{ if or (hasSuffix ".json" $c.config) (hasSuffix ".yaml" $c.config) (hasSuffix ".yml" $c.config) }}File{{ else }}Directory{{ end }}
- name: credential-provider-bin
  hostPath:
    path: {{ $c.binDir }}
    type: Directory
{{- end }}
{{- end }}

{{- define "slimguard.credentialProviderMounts" -}}
{{- $c := .Values.registries.credentialProviders }}
{{- if and (include "slimguard.credentialProviders" .) (eq $c.mount "hostPath") }}
- name: credential-provider-config
  mountPath: {{ $c.config }}
  readOnly: true
- name: credential-provider-bin
  mountPath: {{ $c.binDir }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Where the registries' CA bundle comes from: "inline" (registries.caBundle, kept in the chart's ConfigMap),
"configMap", "secret" or "" (none). Two set at once, or an inline value that is not PEM, fail the render.
*/}}
{{- define "slimguard.registryCaSource" -}}
{{- $r := .Values.registries }}
{{- $set := list }}
{{- if $r.caBundle }}{{ $set = append $set "caBundle" }}{{ end }}
{{- if $r.caBundleConfigMap }}{{ $set = append $set (printf "caBundleConfigMap=%s" $r.caBundleConfigMap) }}{{ end }}
{{- if $r.caBundleSecret }}{{ $set = append $set (printf "caBundleSecret=%s" $r.caBundleSecret) }}{{ end }}
{{- if gt (len $set) 1 }}
{{- fail (printf "registries: set at most one of caBundle, caBundleConfigMap and caBundleSecret (got %s)" (join ", " $set)) }}
{{- end }}
{{- if $r.caBundle }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $r.caBundle) }}
{{- fail (printf "registries.caBundle must be PEM text starting -----BEGIN CERTIFICATE-----; got %q" (trunc 40 $r.caBundle)) }}
{{- end }}
{{- print "inline" }}
{{- else if $r.caBundleConfigMap }}
{{- print "configMap" }}
{{- else if $r.caBundleSecret }}
{{- print "secret" }}
{{- end }}
{{- end }}

{{- define "slimguard.registryCaKey" -}}
{{- if eq (include "slimguard.registryCaSource" .) "inline" }}ca.crt{{ else }}{{ required "registries.caBundleKey must name the key holding the CA bundle" .Values.registries.caBundleKey }}{{ end }}
{{- end }}

{{- define "slimguard.registryCaConfigMap" -}}
{{- printf "%s-registry-ca" (include "slimguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The registries' CA bundle as a volume and its mount, the same for both components ("" when none). */}}
{{- define "slimguard.registryCaVolume" -}}
{{- $source := include "slimguard.registryCaSource" . }}
{{- if $source }}
- name: registry-ca
  {{- if eq $source "secret" }}
  secret:
    secretName: {{ .Values.registries.caBundleSecret }}
  {{- else }}
  configMap:
    name: {{ if eq $source "inline" }}{{ include "slimguard.registryCaConfigMap" . }}{{ else }}{{ .Values.registries.caBundleConfigMap }}{{ end }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "slimguard.registryCaMount" -}}
{{- if include "slimguard.registryCaSource" . }}
- name: registry-ca
  mountPath: /etc/slimguard/registry-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* The Pod's name as kopf's identity (POD_ID): kopf would otherwise look the UID up in /etc/passwd. */}}
{{- define "slimguard.podIdEnv" -}}
- name: POD_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{/* The webhook's review path, validated: the server and the ValidatingWebhookConfiguration both use it. */}}
{{- define "slimguard.webhookPath" -}}
{{- $path := toString .Values.webhook.path }}
{{- if or (not (hasPrefix "/" $path)) (has $path (list "/healthz" "/readyz")) }}
{{- fail (printf "webhook.path must start with / and differ from /healthz and /readyz; got %q" $path) }}
{{- end }}
{{- $path }}
{{- end }}

{{/*
Plain scrape annotations, for a Prometheus without the Operator (its kubernetes-pods job). On the Pods only:
a Prometheus that also scrapes annotated Services would otherwise take every series twice.
*/}}
{{- define "slimguard.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
