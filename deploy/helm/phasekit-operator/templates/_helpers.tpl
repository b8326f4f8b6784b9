{{/* `phasekit` installs as phasekit-operator; any other release name gets NAME-phasekit-operator. */}}
{{- define "phasekit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "phasekit" .Release.Name -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "phasekit.serviceAccountName" -}}
{{- default (include "phasekit.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "phasekit.labels" -}}
app.kubernetes.io/name: phasekit-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "phasekit.selector" -}}
app.kubernetes.io/name: phasekit-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "phasekit.leaderElect" -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled -}}
{{- gt (int .Values.replicaCount) 1 -}}
{{- else -}}
{{- .Values.leaderElection.enabled -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs, and nothing more. */}}
{{- define "phasekit.rules" -}}
- apiGroups: [secrets.phase.dev]
  resources: [phasesecrets]
  # patch: to remove the finalizer Phase's operator v1 (kopf) left behind.
  verbs: [get, list, watch, patch]
- apiGroups: [secrets.phase.dev]
  resources: [phasesecrets/status]
  verbs: [get, patch, update]
- apiGroups: ['']
  resources: [secrets]
  # list and watch are label-selected (managed-by=phasekit); no delete: owned Secrets go by garbage collection.
  verbs: [get, list, watch, create, update]
- apiGroups: ['']
  resources: [events]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  # patch: the pod-template annotation that restarts a workload whose Secret changed.
  verbs: [list, patch]
{{- end -}}
