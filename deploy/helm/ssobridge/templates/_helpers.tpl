{{/* The chart's name, shortened to what a label allows. */}}
{{- define "ssobridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object. */}}
{{- define "ssobridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ssobridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssobridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ssobridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ssobridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ssobridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ssobridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The whole ssobridge.toml: public_url and listen first (top-level keys precede tables). */}}
{{- define "ssobridge.toml" -}}
# Rendered by the ssobridge chart: public_url and listen from its values, the rest is .Values.config.
public_url = {{ .Values.publicUrl | quote }}
listen = "0.0.0.0:{{ .Values.containerPort }}"

{{ .Values.config }}
{{- end }}

{{/* The operations Service's name: the full name (shortened to leave room) and -admin. */}}
{{- define "ssobridge.adminServiceName" -}}
{{- printf "%s-admin" (include "ssobridge.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* The operations Service's labels that the ServiceMonitor selects it by. */}}
{{- define "ssobridge.adminLabels" -}}
{{ include "ssobridge.selectorLabels" . }}
app.kubernetes.io/component: operations
{{- end }}

{{/* The host of publicUrl, which the Ingress and the HTTPRoute route. publicUrl must be a site
     root: ssobridge serves /authorize, /token, … at the root of its own address. */}}
{{- define "ssobridge.publicHost" -}}
{{- $url := urlParse .Values.publicUrl }}
{{- if ne (trimSuffix "/" $url.path) "" }}
{{- fail (printf "publicUrl %s has a path: ssobridge serves at the root of its address (https://host)" .Values.publicUrl) }}
{{- end }}
{{- regexReplaceAll ":[0-9]+$" $url.host "" }}
{{- end }}

{{/* Behind an Ingress or a Gateway every request comes from the proxy: the per-address limits
     must count the browser's address from X-Forwarded-For, or all users share one budget. */}}
{{- define "ssobridge.checkForwardedFor" -}}
{{- if or .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- $inConfig := regexMatch "(?m)^\\s*trust_forwarded_for\\s*=\\s*true\\b" .Values.config }}
{{- $inEnv := false }}
{{- range .Values.extraEnv }}
{{- if and (eq .name "SSOBRIDGE_RATE_LIMITS__TRUST_FORWARDED_FOR") (eq (toString .value) "true") }}
{{- $inEnv = true }}
{{- end }}
{{- end }}
{{- if not (or $inConfig $inEnv) }}
{{- fail "ingress/httpRoute: the pods are reached through a proxy; set trust_forwarded_for = true under [rate_limits] in config (deploy/README.md, Client addresses behind the proxy)" }}
{{- end }}
{{- end }}
{{- end }}
