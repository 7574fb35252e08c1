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
