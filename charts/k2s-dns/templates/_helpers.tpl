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
{{- else if eq .Values.etcd.mode "cluster" -}}
{{ join "," .Values.etcd.cluster.endpoints }}
{{- else -}}
{{ join "," .Values.etcd.external.endpoints }}
{{- end }}
{{- end }}

{{/* Secret names ExternalDNS mounts in the release namespace. */}}
{{- define "k2s-dns.externalDNS.clientSecret" -}}
{{- if eq .Values.etcd.mode "external" }}{{ .Values.etcd.external.clientSecret }}
{{- else if and (eq .Values.etcd.mode "cluster") .Values.etcd.cluster.existingSecret }}{{ .Values.etcd.cluster.existingSecret }}
{{- else }}{{ include "k2s-dns.externalDNS.fullname" . }}-etcd-client{{ end }}
{{- end }}
{{- define "k2s-dns.externalDNS.caSecret" -}}
{{- if eq .Values.etcd.mode "external" }}{{ .Values.etcd.external.caSecret }}
{{- else if and (eq .Values.etcd.mode "cluster") .Values.etcd.cluster.existingSecret }}{{ .Values.etcd.cluster.existingSecret }}
{{- else }}{{ include "k2s-dns.etcd.fullname" . }}-ca{{ end }}
{{- end }}

{{/* Cluster mode without explicit endpoints: the certificate Job publishes the discovered URLs here. */}}
{{- define "k2s-dns.etcd.endpointsSecret" -}}{{ include "k2s-dns.fullname" . }}-etcd-endpoints{{- end }}
{{- define "k2s-dns.etcd.discover" -}}{{ and (eq .Values.etcd.mode "cluster") (not .Values.etcd.cluster.endpoints) }}{{- end }}
{{- define "k2s-dns.certs.fullname" -}}{{ include "k2s-dns.fullname" . }}-etcd-certs{{- end }}

{{- define "k2s-dns.txtOwnerId" -}}{{ .Values.externalDNS.txtOwnerId | default .Release.Name }}{{- end }}

{{- define "k2s-dns.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "k2s-dns.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* "true" when the bundled etcd runs with authentication (it needs client certificates: users are their CNs). */}}
{{- define "k2s-dns.etcd.auth" -}}
{{- and (eq .Values.etcd.mode "bundled") .Values.etcd.tls .Values.etcd.bundled.auth.enabled }}
{{- end }}

{{/* "true" when the etcd endpoints use TLS (CoreDNS then mounts the client certificate). */}}
{{- define "k2s-dns.etcd.useTLS" -}}
{{- if eq .Values.etcd.mode "bundled" }}{{ .Values.etcd.tls }}{{ else if eq .Values.etcd.mode "cluster" }}true{{ else }}{{ hasPrefix "https://" (include "k2s-dns.etcd.endpoints" .) }}{{ end }}
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
      - --pre-stop-sleep={{ $.Values.coredns.preStopSleepSeconds }}
      - --server-block={{ $.Values.coredns.serverBlock }}
      - --zone={{ $.Values.zone }}
      - --path={{ $.Values.etcd.prefix }}
      {{- if eq (include "k2s-dns.etcd.discover" $) "true" }}
      - --endpoints-secret={{ $.Release.Namespace }}/{{ include "k2s-dns.etcd.endpointsSecret" $ }}
      {{- else }}
      {{- range splitList "," (include "k2s-dns.etcd.endpoints" $) }}
      - --endpoint={{ . }}
      {{- end }}
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

{{/*
Pod spec of the cluster-mode certificate Job and CronJob; call with (dict "ctx" $ "variant" "hook"|"cron").
The one pod that is not "restricted": it runs as root (kubeadm's ca.key is
root-only, 0600) on a control-plane node with the etcd PKI mounted read-only;
it still drops every capability and has a read-only root filesystem.
*/}}
{{- define "k2s-dns.certs.podSpec" -}}
{{- $ := .ctx }}
{{- $c := $.Values.etcd.cluster }}
{{- $ns := $.Release.Namespace }}
{{- include "k2s-dns.imagePullSecrets" $ }}
serviceAccountName: {{ include "k2s-dns.certs.fullname" $ }}-{{ .variant }}
automountServiceAccountToken: true
enableServiceLinks: false
restartPolicy: Never
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: false
  runAsUser: 0
  runAsGroup: 0
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: certs
    image: {{ include "k2s-dns.image" (dict "ctx" $ "image" $.Values.coredns.patch.image) }}
    imagePullPolicy: {{ $.Values.coredns.patch.image.pullPolicy }}
    command: [python3, -m, k2s_dns.certs]
    args:
      - --pki-dir=/etc/kubernetes/pki/etcd
      - --days={{ $c.certificateValidityDays }}
      - --renew-before-days={{ $c.renewBeforeDays }}
      - --client={{ $.Values.coredns.namespace }}/{{ $.Values.coredns.clientSecret }}=k2s-dns-coredns
      - --client={{ $ns }}/{{ include "k2s-dns.externalDNS.clientSecret" $ }}=k2s-dns-external-dns
      - --ca-secret={{ $.Values.coredns.namespace }}/{{ $.Values.coredns.caSecret }}
      - --ca-secret={{ $ns }}/{{ include "k2s-dns.externalDNS.caSecret" $ }}
      - --endpoints-secret={{ $ns }}/{{ include "k2s-dns.etcd.endpointsSecret" $ }}
      {{- if $c.endpoints }}
      - --endpoints={{ join "," $c.endpoints }}
      {{- else }}
      - --manifest=/etc/kubernetes/manifests/etcd.yaml
      {{- end }}
      - --rollout={{ $.Values.coredns.namespace }}/{{ $.Values.coredns.deployment }}
      - --rollout={{ $ns }}/{{ include "k2s-dns.externalDNS.fullname" $ }}
      - --label=app.kubernetes.io/part-of=k2s-dns
      - --label=app.kubernetes.io/instance={{ $.Release.Name }}
    env:
      - {name: PYTHONDONTWRITEBYTECODE, value: "1"}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    resources:
      {{- toYaml $.Values.coredns.patch.resources | nindent 6 }}
    volumeMounts:
      - {name: pki, mountPath: /etc/kubernetes/pki/etcd, readOnly: true}
      {{- if not $c.endpoints }}
      - {name: manifests, mountPath: /etc/kubernetes/manifests, readOnly: true}
      {{- end }}
volumes:
  - name: pki
    hostPath: {path: {{ $c.pkiPath }}, type: Directory}
  {{- if not $c.endpoints }}
  - name: manifests
    hostPath: {path: {{ $c.manifestsPath }}, type: Directory}
  {{- end }}
{{- end }}
