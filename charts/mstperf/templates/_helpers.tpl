{{/*
The chart name, or nameOverride.
*/}}
{{- define "mstperf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, or "<release>-<name>" (just the release name when it already
contains the chart name). Truncated so that "<fullname>-loadgen-headless" stays a valid Service
name (63 characters).
*/}}
{{- define "mstperf.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<name>-<version>" for the helm.sh/chart label.
*/}}
{{- define "mstperf.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource. Call with (dict "ctx" $ "component" "loadgen"); component may be "".
*/}}
{{- define "mstperf.labels" -}}
helm.sh/chart: {{ include "mstperf.chart" .ctx }}
{{ include "mstperf.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mstperf
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "loadgen").
*/}}
{{- define "mstperf.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mstperf.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount name.
*/}}
{{- define "mstperf.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mstperf.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
A component's image. Call with (dict "ctx" $ "image" .Values.loadgen.image).
*/}}
{{- define "mstperf.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- if .ctx.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .ctx.Values.image.registry) .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Names of the components' Services.
*/}}
{{- define "mstperf.controller.fullname" -}}
{{- printf "%s-controller" (include "mstperf.fullname" .) }}
{{- end }}
{{- define "mstperf.evaluator.fullname" -}}
{{- printf "%s-evaluator" (include "mstperf.fullname" .) }}
{{- end }}
{{- define "mstperf.loadgen.fullname" -}}
{{- printf "%s-loadgen" (include "mstperf.fullname" .) }}
{{- end }}
{{- define "mstperf.loadgen.headless" -}}
{{- printf "%s-loadgen-headless" (include "mstperf.fullname" .) }}
{{- end }}
{{- define "mstperf.simulator.fullname" -}}
{{- printf "%s-simulator" (include "mstperf.fullname" .) }}
{{- end }}

{{/*
The loadgen addresses the controller uses by default: every replica, through the headless
Service (gRPC's DNS resolver returns one address per ready pod).
*/}}
{{- define "mstperf.controller.loadgen" -}}
{{- if .Values.controller.loadgenAddresses }}
{{- join "," .Values.controller.loadgenAddresses }}
{{- else }}
{{- printf "dns:///%s:%d" (include "mstperf.loadgen.headless" .) (int .Values.loadgen.port) }}
{{- end }}
{{- end }}

{{- define "mstperf.controller.evaluator" -}}
{{- if .Values.controller.evaluatorAddress }}
{{- .Values.controller.evaluatorAddress }}
{{- else }}
{{- printf "%s:%d" (include "mstperf.evaluator.fullname" .) (int .Values.evaluator.service.port) }}
{{- end }}
{{- end }}

{{/*
The claim of the results volume.
*/}}
{{- define "mstperf.controller.claimName" -}}
{{- default (printf "%s-results" (include "mstperf.controller.fullname" .)) .Values.controller.persistence.existingClaim }}
{{- end }}

{{/*
Pod-level fields every component shares. Call with (dict "ctx" $ "values" .Values.loadgen).
*/}}
{{- define "mstperf.podCommon" -}}
serviceAccountName: {{ include "mstperf.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountServiceAccountToken }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
