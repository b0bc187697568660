{{/*
The chart's name, or nameOverride.
*/}}
{{- define "gitops-bot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' base name: fullnameOverride, else the release name when it
holds the chart's name (gitops-bot for the release gitops-bot, as in
deploy/base), else "<release>-<name>". Cut to 50 characters so the longest
suffix ("-credentials", "-preview") still fits a label value.
*/}}
{{- define "gitops-bot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := include "gitops-bot.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The helm.sh/chart label: "<name>-<version>".
*/}}
{{- define "gitops-bot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "gitops-bot.labels" -}}
helm.sh/chart: {{ include "gitops-bot.chart" . }}
{{ include "gitops-bot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the bot's pods (Deployment, Service, NetworkPolicy,
PodDisruptionBudget, ServiceMonitor).
*/}}
{{- define "gitops-bot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitops-bot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Secret with the forges' credentials.
*/}}
{{- define "gitops-bot.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-credentials" (include "gitops-bot.fullname" .)) }}
{{- end }}

{{/*
The bot's config.yaml: .Values.config with state.namespace defaulting to
the release's namespace.
*/}}
{{- define "gitops-bot.config" -}}
{{- $config := deepCopy .Values.config }}
{{- with $config.state }}
{{- if not .namespace }}
{{- $_ := set . "namespace" $.Release.Namespace }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The namespace of the bot's state (Leases, ConfigMaps).
*/}}
{{- define "gitops-bot.stateNamespace" -}}
{{- (.Values.config.state | default dict).namespace | default .Release.Namespace }}
{{- end }}

{{/*
The namespaces the bot manages with rbac.scope namespaced; fails on a bad
rbac.scope or an empty list, so a mistake shows at install, not as
"forbidden" in the first preview.
*/}}
{{- define "gitops-bot.rbacScope" -}}
{{- $scope := .Values.rbac.scope }}
{{- if not (has $scope (list "cluster" "namespaced")) }}
{{- fail (printf "rbac.scope is %q: set it to cluster (ClusterRoles) or namespaced (Roles in rbac.namespaces)" (toString $scope)) }}
{{- end }}
{{- if and (eq $scope "namespaced") (empty .Values.rbac.namespaces) }}
{{- fail "rbac.scope namespaced grants nothing without namespaces: set rbac.namespaces to the namespaces the bot manages (--set 'rbac.namespaces={shop,web}')" }}
{{- end }}
{{- $scope }}
{{- end }}
