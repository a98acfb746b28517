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

{{- /*
ExternalDNS settings added with ExternalDNS v0.23, as a dict. `helm upgrade --reuse-values` from an older chart
reuses that chart's values, which lack these keys: a missing key gets this chart's default, so existing
external-dns.alpha.kubernetes.io/ annotations keep working and the service source keeps its narrow grant.
*/}}
{{- define "k2s-dns.externalDNS.settings" -}}
{{- $e := .Values.externalDNS -}}
{{- $legacy := true -}}
{{- if hasKey $e "legacyAnnotationPrefix" }}{{ $legacy = $e.legacyAnnotationPrefix }}{{ end -}}
{{- toJson (dict
  "serviceTypes" (ternary $e.serviceTypes (list "LoadBalancer") (hasKey $e "serviceTypes"))
  "managedRecordTypes" ($e.managedRecordTypes | default (list "A" "AAAA" "CNAME" "TXT"))
  "annotationPrefix" ($e.annotationPrefix | default "external-dns.kubernetes.io/")
  "legacyAnnotationPrefix" $legacy) -}}
{{- end }}

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

{{/* Hook events of the "apply" and "remove" Jobs (YAML; an empty value: no such Job). */}}
{{- define "k2s-dns.hook.events" -}}
{{- if not .Values.coredns.patch.enabled }}
apply: ""
remove: post-upgrade,post-rollback,pre-delete
{{- else if .Values.coredns.reconcile.enabled }}
apply: ""
remove: pre-delete
{{- else }}
apply: post-install,post-upgrade,post-rollback
remove: pre-delete
{{- end }}
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
      - --desired={{ $.Release.Namespace }}/{{ include "k2s-dns.desired.fullname" $ }}
      - --timeout={{ $.Values.coredns.rolloutTimeout }}
      {{- if eq .action "remove" }}
      {{- /* Also when this release has no controller (any more): one may still be terminating. */}}
      - --stop-controller={{ $.Release.Namespace }}/{{ include "k2s-dns.controller.fullname" $ }}
      - --controller-selector=app.kubernetes.io/name={{ include "k2s-dns.name" $ }},app.kubernetes.io/instance={{ $.Release.Name }},app.kubernetes.io/component=controller
      {{- end }}
    env:
      - {name: PYTHONDONTWRITEBYTECODE, value: "1"}
    securityContext:
      {{- include "k2s-dns.securityContext" $ | nindent 6 }}
    resources:
      {{- toYaml $p.resources | nindent 6 }}
{{ include "k2s-dns.linuxNodeSelector" (dict "ctx" $ "nodeSelector" dict) }}
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
{{ include "k2s-dns.linuxNodeSelector" (dict "ctx" $ "nodeSelector" $c.nodeSelector) }}
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
      {{- if ne (include "k2s-dns.controller.enabled" $) "true" }}
      {{- /* With a controller, it restarts CoreDNS itself when the certificates change. */}}
      - --rollout={{ $.Values.coredns.namespace }}/{{ $.Values.coredns.deployment }}
      {{- end }}
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

{{- define "k2s-dns.controller.fullname" -}}{{ include "k2s-dns.fullname" . }}-controller{{- end }}
{{- define "k2s-dns.desired.fullname" -}}{{ include "k2s-dns.fullname" . }}-coredns-desired{{- end }}
{{/* "true" when a controller keeps CoreDNS converged (otherwise hooks apply the patch once per release change). */}}
{{- define "k2s-dns.controller.enabled" -}}{{ and .Values.coredns.patch.enabled .Values.coredns.reconcile.enabled }}{{- end }}

{{/* The desired CoreDNS integration as JSON (read by src/k2s_dns/desired.py). */}}
{{- define "k2s-dns.desired" -}}
{{- $d := dict
  "zone" .Values.zone
  "path" .Values.etcd.prefix
  "tls" (eq (include "k2s-dns.etcd.useTLS" .) "true")
  "namespace" .Values.coredns.namespace
  "configmap" .Values.coredns.configMap
  "deployment" .Values.coredns.deployment
  "container" .Values.coredns.container
  "serverBlock" .Values.coredns.serverBlock
  "clientSecret" .Values.coredns.clientSecret
  "caSecret" .Values.coredns.caSecret
  "preStopSleep" (int .Values.coredns.preStopSleepSeconds)
  "adoptExistingEtcdBlock" .Values.coredns.patch.adoptExistingEtcdBlock
  "nodeLocalDnsConfigmap" .Values.coredns.nodeLocalDNS.configMap
  "clusterDomain" .Values.clusterDomain }}
{{- if eq (include "k2s-dns.etcd.discover" .) "true" }}
{{- $_ := set $d "endpointsSecret" (printf "%s/%s" .Release.Namespace (include "k2s-dns.etcd.endpointsSecret" .)) }}
{{- else }}
{{- $_ := set $d "endpoints" (splitList "," (include "k2s-dns.etcd.endpoints" .)) }}
{{- end }}
{{- if eq .Values.etcd.mode "bundled" }}
{{- $_ := set $d "hostAliases" (list (printf "%s=%s/%s" (include "k2s-dns.etcd.serviceHost" .) .Release.Namespace (include "k2s-dns.etcd.fullname" .))) }}
{{- end }}
{{- toPrettyJson $d }}
{{- end }}

{{/* RBAC rules on the CoreDNS objects; call with (dict "ctx" $ "verbs" (list ...) "secretVerbs" (list ...)). */}}
{{- define "k2s-dns.coredns.rules" -}}
{{- $ := .ctx }}
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ $.Values.coredns.configMap | quote }}{{ with $.Values.coredns.nodeLocalDNS.configMap }}, {{ . | quote }}{{ end }}]
  verbs: [{{ join ", " .verbs }}]
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [{{ $.Values.coredns.deployment | quote }}]
  verbs: [{{ join ", " .verbs }}]
{{- if eq (include "k2s-dns.etcd.useTLS" $) "true" }}
# The certificates CoreDNS mounts: their digest restarts CoreDNS when they change.
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ $.Values.coredns.clientSecret | quote }}, {{ $.Values.coredns.caSecret | quote }}]
  verbs: [{{ join ", " .secretVerbs }}]
{{- end }}
{{- end }}

{{/* RBAC rules in the release namespace for resolving the desired state (etcd Service IP, discovered URLs). */}}
{{- define "k2s-dns.release.rules" -}}
{{- $ := .ctx }}
{{- if eq $.Values.etcd.mode "bundled" }}
- apiGroups: [""]
  resources: [services]
  resourceNames: [{{ include "k2s-dns.etcd.fullname" $ | quote }}]
  verbs: [get]
{{- end }}
{{- if eq (include "k2s-dns.etcd.discover" $) "true" }}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "k2s-dns.etcd.endpointsSecret" $ | quote }}]
  verbs: [{{ join ", " .secretVerbs }}]
{{- end }}
{{- end }}

{{/* nodeSelector with kubernetes.io/os: linux unless overridden; call with (dict "ctx" $ "nodeSelector" $sel). */}}
{{- define "k2s-dns.linuxNodeSelector" -}}
nodeSelector:
  {{- toYaml (merge (dict) (.nodeSelector | default dict) (dict "kubernetes.io/os" "linux")) | nindent 2 }}
{{- end }}
