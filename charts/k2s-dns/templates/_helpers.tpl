{{/* Chart name. */}}
{{- define "k2s-dns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: release name, plus the chart name unless it is in there already. */}}
{{- define "k2s-dns.fullname" -}}
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

{{- define "k2s-dns.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; call with (dict "ctx" $ "component" "etcd"). */}}
{{- define "k2s-dns.labels" -}}
helm.sh/chart: {{ include "k2s-dns.chart" .ctx }}
{{ include "k2s-dns.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: k2s-dns
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "k2s-dns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k2s-dns.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference; call with (dict "ctx" $ "image" .Values.x.image). */}}
{{- define "k2s-dns.image" -}}
{{- $registry := .ctx.Values.global.imageRegistry | default .image.registry -}}
{{- $tag := .image.tag | default .ctx.Chart.Version -}}
{{- if $registry }}{{ printf "%s/%s:%s" $registry .image.repository $tag }}{{ else }}{{ printf "%s:%s" .image.repository $tag }}{{ end }}
{{- end }}

{{- define "k2s-dns.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "k2s-dns.etcd.fullname" -}}{{ include "k2s-dns.fullname" . }}-etcd{{- end }}
{{- define "k2s-dns.etcd.headless" -}}{{ include "k2s-dns.fullname" . }}-etcd-headless{{- end }}
{{- define "k2s-dns.externalDNS.fullname" -}}{{ include "k2s-dns.fullname" . }}-external-dns{{- end }}
{{- define "k2s-dns.hook.fullname" -}}{{ include "k2s-dns.fullname" . }}-coredns-patch{{- end }}

{{- define "k2s-dns.scheme" -}}{{ ternary "https" "http" .Values.etcd.tls }}{{- end }}

{{/* DNS name of the bundled etcd client Service; also in its server certificate. */}}
{{- define "k2s-dns.etcd.serviceHost" -}}
{{ include "k2s-dns.etcd.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{/* Comma-separated etcd client URLs for ExternalDNS and CoreDNS. */}}
{{- define "k2s-dns.etcd.endpoints" -}}
{{- if eq .Values.etcd.mode "bundled" -}}
{{ include "k2s-dns.scheme" . }}://{{ include "k2s-dns.etcd.serviceHost" . }}:2379
{{- else -}}
{{ join "," .Values.etcd.external.endpoints }}
{{- end }}
{{- end }}

{{/* Secret names ExternalDNS mounts in the release namespace. */}}
{{- define "k2s-dns.externalDNS.clientSecret" -}}
{{- if eq .Values.etcd.mode "bundled" }}{{ include "k2s-dns.externalDNS.fullname" . }}-etcd-client{{ else }}{{ .Values.etcd.external.clientSecret }}{{ end }}
{{- end }}
{{- define "k2s-dns.externalDNS.caSecret" -}}
{{- if eq .Values.etcd.mode "bundled" }}{{ include "k2s-dns.etcd.fullname" . }}-ca{{ else }}{{ .Values.etcd.external.caSecret }}{{ end }}
{{- end }}

{{- define "k2s-dns.txtOwnerId" -}}{{ .Values.externalDNS.txtOwnerId | default .Release.Name }}{{- end }}

{{- define "k2s-dns.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "k2s-dns.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* "true" when the etcd endpoints use TLS (CoreDNS then mounts the client certificate). */}}
{{- define "k2s-dns.etcd.useTLS" -}}
{{- if eq .Values.etcd.mode "bundled" }}{{ .Values.etcd.tls }}{{ else }}{{ hasPrefix "https://" (include "k2s-dns.etcd.endpoints" .) }}{{ end }}
{{- end }}

{{/* Pod spec shared by the CoreDNS patch and restore hook Jobs; call with (dict "ctx" $ "action" "apply"). */}}
{{- define "k2s-dns.hook.podSpec" -}}
{{- $ := .ctx }}
{{- $p := $.Values.coredns.patch }}
{{- include "k2s-dns.imagePullSecrets" $ }}
serviceAccountName: {{ include "k2s-dns.hook.fullname" $ }}
automountServiceAccountToken: true
enableServiceLinks: false
restartPolicy: Never
securityContext:
  {{- include "k2s-dns.podSecurityContext" $ | nindent 2 }}
containers:
  - name: {{ .action }}
    image: {{ include "k2s-dns.image" (dict "ctx" $ "image" $p.image) }}
    imagePullPolicy: {{ $p.image.pullPolicy }}
    command: [python3, -m, k2s_dns.hook, {{ .action }}]
    args:
      - --namespace={{ $.Values.coredns.namespace }}
      - --configmap={{ $.Values.coredns.configMap }}
      - --deployment={{ $.Values.coredns.deployment }}
      - --container={{ $.Values.coredns.container }}
      - --timeout={{ $.Values.coredns.rolloutTimeout }}
      {{- if eq .action "apply" }}
      - --server-block={{ $.Values.coredns.serverBlock }}
      - --zone={{ $.Values.zone }}
      - --path={{ $.Values.etcd.prefix }}
      {{- range splitList "," (include "k2s-dns.etcd.endpoints" $) }}
      - --endpoint={{ . }}
      {{- end }}
      - --{{ if ne (include "k2s-dns.etcd.useTLS" $) "true" }}no-{{ end }}tls
      - --client-secret={{ $.Values.coredns.clientSecret }}
      - --ca-secret={{ $.Values.coredns.caSecret }}
      {{- if eq $.Values.etcd.mode "bundled" }}
      - --host-alias={{ include "k2s-dns.etcd.serviceHost" $ }}={{ $.Release.Namespace }}/{{ include "k2s-dns.etcd.fullname" $ }}
      {{- end }}
      {{- end }}
    env:
      - {name: PYTHONDONTWRITEBYTECODE, value: "1"}
    securityContext:
      {{- include "k2s-dns.securityContext" $ | nindent 6 }}
    resources:
      {{- toYaml $p.resources | nindent 6 }}
{{- end }}
