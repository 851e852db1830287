{{/* The reconcilers this chart knows, in the order their objects are rendered. */}}
{{- define "ballast.components" -}}
horizontal nodes vertical
{{- end }}

{{/* Prefix of every object's name: the release name, or release-chart when it lacks "ballast". */}}
{{- define "ballast.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Name of a reconciler's objects. Call with (dict "root" $ "component" "horizontal"). */}}
{{- define "ballast.componentName" -}}
{{- printf "%s-%s" (include "ballast.fullname" .root) .component }}
{{- end }}

{{/* Labels selecting a reconciler's pods. */}}
{{- define "ballast.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of every object of a reconciler. */}}
{{- define "ballast.labels" -}}
{{ include "ballast.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{/* metadata.name, namespace and labels of a reconciler's namespaced object. */}}
{{- define "ballast.metadata" -}}
name: {{ include "ballast.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "ballast.labels" . | nindent 2 }}
{{- end }}

{{/* A ClusterRoleBinding or RoleBinding's subject: the reconciler's ServiceAccount. */}}
{{- define "ballast.subject" -}}
- kind: ServiceAccount
  name: {{ include "ballast.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
{{- end }}
