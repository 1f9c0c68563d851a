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
