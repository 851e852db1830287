{{/* Command-line flags of each reconciler after `controller NAME`. Called with the root context. */}}

{{- define "ballast.args.horizontal" -}}
{{- $v := .Values.horizontal -}}
- --metrics-addr=0.0.0.0:{{ $v.metricsPort }}
- --metrics-bind-any
- --activation-poll={{ $v.activationPollMilliseconds | int }}
{{- if $v.nativeHpa }}
- --native-hpa
{{- end }}
{{- with $v.prometheusUrl }}
- {{ printf "--prometheus-url=%s" . | quote }}
{{- end }}
{{- with $v.namespace }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- if .Values.logJson }}
- --log-json
{{- end }}
{{- end }}

{{- define "ballast.args.nodes" -}}
{{- $v := .Values.nodes -}}
- --provider={{ $v.provider }}
{{- if $v.catalogConfigMap }}
- --{{ ternary "price-file" "catalog" (eq $v.provider "aws") }}=/etc/ballast/catalog.yaml
{{- end }}
{{- with $v.clusterName }}
- {{ printf "--cluster-name=%s" . | quote }}
{{- end }}
{{- with $v.awsRegion }}
- {{ printf "--aws-region=%s" . | quote }}
{{- end }}
{{- with $v.interruptionQueue }}
- {{ printf "--interruption-queue=%s" . | quote }}
{{- end }}
{{- with $v.nodepoolSelector }}
- {{ printf "--nodepool-selector=%s" . | quote }}
{{- end }}
- --nodes-health-addr=0.0.0.0:{{ $v.metricsPort }}
- --nodes-health-bind-any
{{- if .Values.logJson }}
- --log-json
{{- end }}
{{- end }}

{{- define "ballast.args.vertical" -}}
{{- $v := .Values.vertical -}}
- --metrics-addr=0.0.0.0:{{ $v.metricsPort }}
- --metrics-bind-any
{{- if $v.webhook.enabled }}
- --webhook-addr=0.0.0.0:{{ $v.webhook.port }}
- --webhook-cert-dir=/etc/ballast/webhook
{{- if $v.updater.enabled }}
- {{ printf "--updater-interval=%s" $v.updater.interval | quote }}
{{- else }}
- --no-updater
{{- end }}
{{- end }}
{{- with $v.prometheusUrl }}
- {{ printf "--prometheus-url=%s" . | quote }}
{{- end }}
{{- with $v.namespace }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- if .Values.logJson }}
- --log-json
{{- end }}
{{- end }}

{{/* Leader election flags (when leaderElection.enabled). Called with (dict "root" $ "component" NAME). */}}
{{- define "ballast.args.leader" -}}
{{- $l := .root.Values.leaderElection -}}
- --leader-elect
- --leader-election-namespace={{ .root.Release.Namespace }}
- --leader-election-id={{ include "ballast.componentName" . }}
- --leader-election-lease-duration={{ $l.leaseDuration }}
- --leader-election-renew-deadline={{ $l.renewDeadline }}
- --leader-election-retry-period={{ $l.retryPeriod }}
{{- end }}
