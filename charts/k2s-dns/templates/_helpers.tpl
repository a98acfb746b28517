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
{{- else if eq (include "k2s-dns.etcd.existingCertificates" .) "true" }}{{ .Values.etcd.bundled.existingSecrets.externalDNS }}
{{- else }}{{ include "k2s-dns.externalDNS.fullname" . }}-etcd-client{{ end }}
{{- end }}
{{- define "k2s-dns.externalDNS.caSecret" -}}
{{- if eq .Values.etcd.mode "external" }}{{ .Values.etcd.external.caSecret }}
{{- else if and (eq .Values.etcd.mode "cluster") .Values.etcd.cluster.existingSecret }}{{ .Values.etcd.cluster.existingSecret }}
{{- else if eq (include "k2s-dns.etcd.existingCertificates" .) "true" }}{{ .Values.etcd.bundled.existingSecrets.externalDNS }}
{{- else }}{{ include "k2s-dns.etcd.fullname" . }}-ca{{ end }}
{{- end }}

{{/*
Bundled etcd certificates. "true" when the user names existing Secrets for them (etcd.bundled.existingSecrets:
GitOps renders, where lookup finds nothing); otherwise the chart generates them once and keeps them.
`dig` because `helm upgrade --reuse-values` from an older chart reuses values without the key.
*/}}
{{- define "k2s-dns.etcd.existingCertificates" -}}
{{- $e := dig "existingSecrets" dict .Values.etcd.bundled -}}
{{- if and (eq .Values.etcd.mode "bundled") .Values.etcd.tls (or $e.server $e.peer $e.externalDNS) }}true{{ else }}false{{ end -}}
{{- end }}
{{- define "k2s-dns.etcd.serverSecret" -}}
{{- if eq (include "k2s-dns.etcd.existingCertificates" .) "true" }}{{ .Values.etcd.bundled.existingSecrets.server }}
{{- else }}{{ include "k2s-dns.etcd.fullname" . }}-server{{ end }}
{{- end }}
{{- define "k2s-dns.etcd.rootSecret" -}}
{{- with dig "existingSecrets" "rootPassword" "" .Values.etcd.bundled }}{{ . }}
{{- else }}{{ include "k2s-dns.etcd.fullname" . }}-root{{ end }}
{{- end }}
{{/* The one CN etcd's peer port accepts (--peer-cert-allowed-cn): no client certificate carries it. */}}
{{- define "k2s-dns.etcd.peerCN" -}}k2s-dns-etcd-peer{{- end }}

{{/*
The peer certificate, as JSON {"secret": NAME, "cn": ALLOWED_CN}; "secret" empty: the member's serving
certificate (in the server Secret) is also its peer certificate. That is the case only for a release whose
certificates were generated by a chart version before the dedicated peer certificate, and only until they are
generated again: no CA key is stored, so no peer certificate can be added to them, and switching a running
multi-member cluster to a new CA would leave the restarted member unable to reach the others. Its CN, the
StatefulSet's name, is on no client certificate either.
*/}}
{{- define "k2s-dns.etcd.peer" -}}
{{- $etcd := include "k2s-dns.etcd.fullname" . }}
{{- if eq (include "k2s-dns.etcd.existingCertificates" .) "true" }}
{{- dict "secret" .Values.etcd.bundled.existingSecrets.peer "cn" (include "k2s-dns.etcd.peerCN" .) | toJson }}
{{- else if eq (include "k2s-dns.etcd.legacyPeer" .) "true" }}
{{- dict "secret" "" "cn" $etcd | toJson }}
{{- else }}
{{- dict "secret" (printf "%s-peer" $etcd) "cn" (include "k2s-dns.etcd.peerCN" .) | toJson }}
{{- end }}
{{- end }}

{{/* The generated certificate Secrets other than the peer one, as {key: [namespace, name]}. */}}
{{- define "k2s-dns.etcd.certificateSecrets" -}}
{{- $etcd := include "k2s-dns.etcd.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- dict
  "ca" (list $ns (printf "%s-ca" $etcd))
  "server" (list $ns (printf "%s-server" $etcd))
  "externalDNS" (list $ns (include "k2s-dns.externalDNS.clientSecret" .))
  "corednsClient" (list .Values.coredns.namespace .Values.coredns.clientSecret)
  "corednsCA" (list .Values.coredns.namespace .Values.coredns.caSecret) | toJson }}
{{- end }}

{{/* "true" when all generated certificate Secrets exist, are this release's, but there is no peer Secret. */}}
{{- define "k2s-dns.etcd.legacyPeer" -}}
{{- $ := . }}
{{- $owned := 0 }}
{{- $names := include "k2s-dns.etcd.certificateSecrets" . | fromJson }}
{{- range $key, $ref := $names }}
{{- $s := lookup "v1" "Secret" (index $ref 0) (index $ref 1) }}
{{- if and $s $s.data (eq (include "k2s-dns.ownedByRelease" (dict "ctx" $ "obj" $s)) "true") }}{{ $owned = add1 $owned }}{{ end }}
{{- end }}
{{- $peer := lookup "v1" "Secret" .Release.Namespace (printf "%s-peer" (include "k2s-dns.etcd.fullname" .)) }}
{{- and (eq (int $owned) (len $names)) (not $peer) | toString }}
{{- end }}

{{/* Ownership of the Secrets k2s-dns writes: annotation k2s-dns.io/owner, value NAMESPACE/RELEASE. */}}
{{- define "k2s-dns.owner" -}}{{ .Release.Namespace }}/{{ .Release.Name }}{{- end }}

{{/*
"true" when an existing object belongs to this release; call with (dict "ctx" $ "obj" $obj). The rule (the
same as src/k2s_dns/ownership.py): its k2s-dns.io/owner annotation names this release; without one (written
by a chart version before the annotation), Helm's release annotations name it, or, without those, the
labels app.kubernetes.io/part-of=k2s-dns and app.kubernetes.io/instance=<release> do.
*/}}
{{- define "k2s-dns.ownedByRelease" -}}
{{- $r := .ctx.Release }}
{{- $meta := .obj.metadata | default dict }}
{{- $ann := $meta.annotations | default dict }}
{{- $labels := $meta.labels | default dict }}
{{- if hasKey $ann "k2s-dns.io/owner" }}
{{- eq (index $ann "k2s-dns.io/owner") (printf "%s/%s" $r.Namespace $r.Name) | toString }}
{{- else if hasKey $ann "meta.helm.sh/release-name" }}
{{- and (eq (index $ann "meta.helm.sh/release-name") $r.Name) (eq (index $ann "meta.helm.sh/release-namespace" | default "") $r.Namespace) | toString }}
{{- else }}
{{- and (eq (index $labels "app.kubernetes.io/part-of" | default "") "k2s-dns") (eq (index $labels "app.kubernetes.io/instance" | default "") $r.Name) | toString }}
{{- end }}
{{- end }}

{{/* Who an existing object belongs to, for messages. */}}
{{- define "k2s-dns.ownerOf" -}}
{{- $meta := .metadata | default dict }}
{{- $ann := $meta.annotations | default dict }}
{{- $labels := $meta.labels | default dict }}
{{- if hasKey $ann "k2s-dns.io/owner" }}k2s-dns release {{ index $ann "k2s-dns.io/owner" }}
{{- else if hasKey $ann "meta.helm.sh/release-name" }}Helm release {{ index $ann "meta.helm.sh/release-namespace" | default "?" }}/{{ index $ann "meta.helm.sh/release-name" }}
{{- else if eq (index $labels "app.kubernetes.io/part-of" | default "") "k2s-dns" }}k2s-dns release {{ index $labels "app.kubernetes.io/instance" | default "?" }}
{{- else }}no k2s-dns release: somebody else made it{{ end }}
{{- end }}

{{/*
Every Secret the chart (bundled mode) or its certificate Job (cluster mode) writes, as a JSON list of
[namespace, name]: the user's own (existingSecrets, existingSecret) are not among them.
*/}}
{{- define "k2s-dns.secrets.written" -}}
{{- $refs := list }}
{{- $ns := .Release.Namespace }}
{{- if and (eq .Values.etcd.mode "bundled") .Values.etcd.tls (ne (include "k2s-dns.etcd.existingCertificates" .) "true") }}
{{- range $key, $ref := include "k2s-dns.etcd.certificateSecrets" . | fromJson }}{{ $refs = append $refs $ref }}{{ end }}
{{- $refs = append $refs (list $ns (printf "%s-peer" (include "k2s-dns.etcd.fullname" .))) }}
{{- end }}
{{- if and (eq (include "k2s-dns.etcd.auth" .) "true") (not (dig "existingSecrets" "rootPassword" "" .Values.etcd.bundled)) }}
{{- $refs = append $refs (list $ns (include "k2s-dns.etcd.rootSecret" .)) }}
{{- end }}
{{- if and (eq .Values.etcd.mode "cluster") (not .Values.etcd.cluster.existingSecret) }}
{{- range list (include "k2s-dns.externalDNS.clientSecret" .) (include "k2s-dns.externalDNS.caSecret" .) (include "k2s-dns.etcd.endpointsSecret" .) }}
{{- $refs = append $refs (list $ns .) }}
{{- end }}
{{- $refs = concat $refs (list (list .Values.coredns.namespace .Values.coredns.clientSecret) (list .Values.coredns.namespace .Values.coredns.caSecret)) }}
{{- end }}
{{- toJson $refs }}
{{- end }}

{{/*
Stops the render, naming them all, when Secrets the chart or its Jobs would write (k2s-dns.secrets.written)
exist and are not this release's (unless etcd.adoptExistingSecrets). Every template that writes one calls it,
so whichever Helm renders first gives the same message. lookup finds nothing in `helm template`; Helm's own
check (install) and the Job's (cluster mode) still apply there. This message comes before Helm's "invalid
ownership metadata".
*/}}
{{- define "k2s-dns.secrets.refuseForeign" -}}
{{- $ := . }}
{{- if not $.Values.etcd.adoptExistingSecrets }}
{{- $foreign := list }}
{{- range include "k2s-dns.secrets.written" $ | fromJsonArray }}
{{- $s := lookup "v1" "Secret" (index . 0) (index . 1) }}
{{- if and $s (ne (include "k2s-dns.ownedByRelease" (dict "ctx" $ "obj" $s)) "true") }}
{{- $foreign = append $foreign (printf "Secret %s/%s (it belongs to %s)" (index . 0) (index . 1) (include "k2s-dns.ownerOf" $s)) }}
{{- end }}
{{- end }}
{{- if $foreign }}
{{- $one := eq (len $foreign) 1 }}
{{- $it := ternary "it" "them" $one }}
{{- $msg := printf "%s %s not made by release %s: k2s-dns never overwrites or deletes a Secret that is not its own." (join "; " $foreign) (ternary "exists and was" "exist and were" $one) (include "k2s-dns.owner" $) }}
{{- $how := "give CoreDNS's Secrets other names (coredns.clientSecret, coredns.caSecret), or sign certificates yourself (etcd.cluster.existingSecret)" }}
{{- if eq $.Values.etcd.mode "bundled" }}
{{- $how = "use certificates and a password you made yourself (etcd.bundled.existingSecrets), or give CoreDNS's Secrets other names (coredns.clientSecret, coredns.caSecret)" }}
{{- end }}
{{- $msg = printf "%s Either delete %s if nothing else needs %s, or %s, or set etcd.adoptExistingSecrets=true to let this release take %s over (%s then overwritten, and deleted on uninstall%s)." $msg $it $it $how $it (ternary "it is" "they are" $one) (ternary "; Helm also needs --take-ownership" "" (eq $.Values.etcd.mode "bundled")) }}
{{- fail $msg }}
{{- end }}
{{- end }}
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
  "legacyAnnotationPrefix" $legacy
  "recordTTL" (ternary $e.recordTTL 5 (hasKey $e "recordTTL"))) -}}
{{- end }}

{{- /* ExternalDNS's coredns-provider settings (its container and its wait-for-etcd init container): the
endpoints, and with TLS the client certificate and CA files. */}}
{{- define "k2s-dns.externalDNS.etcdEnv" -}}
- name: ETCD_URLS
  {{- if eq (include "k2s-dns.etcd.discover" .) "true" }}
  valueFrom:
    secretKeyRef:
      name: {{ include "k2s-dns.etcd.endpointsSecret" . }}
      key: ETCD_URLS
  {{- else }}
  value: {{ include "k2s-dns.etcd.endpoints" . | quote }}
  {{- end }}
{{- if eq (include "k2s-dns.etcd.useTLS" .) "true" }}
- name: ETCD_CA_FILE
  value: /etc/k2s-dns/etcd-ca/ca.crt
- name: ETCD_CERT_FILE
  value: /etc/k2s-dns/etcd-client/tls.crt
- name: ETCD_KEY_FILE
  value: /etc/k2s-dns/etcd-client/tls.key
{{- end }}
{{- end }}
{{- define "k2s-dns.externalDNS.etcdMounts" -}}
- {name: etcd-client, mountPath: /etc/k2s-dns/etcd-client, readOnly: true}
- {name: etcd-ca, mountPath: /etc/k2s-dns/etcd-ca, readOnly: true}
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

{{/*
"true" when the etcd endpoints use TLS: then ExternalDNS and CoreDNS both mount a client certificate. One rule
for both: bundled etcd.tls; cluster mode always; external mode exactly when its endpoints are https:// (the
schema requires caSecret and clientSecret then, and forbids them with http://).
*/}}
{{- define "k2s-dns.etcd.useTLS" -}}
{{- if eq .Values.etcd.mode "bundled" }}{{ .Values.etcd.tls }}{{ else if eq .Values.etcd.mode "cluster" }}true{{ else }}{{ hasPrefix "https://" (include "k2s-dns.etcd.endpoints" .) }}{{ end }}
{{- end }}

{{/*
Checks the schema makes too, with a message that says why: for `--skip-schema-validation`, which skips it.
*/}}
{{- define "k2s-dns.validate" -}}
{{- if eq .Values.etcd.mode "external" }}
{{- $x := .Values.etcd.external }}
{{- $https := 0 }}
{{- range $x.endpoints }}{{ if hasPrefix "https://" . }}{{ $https = add1 $https }}{{ end }}{{ end }}
{{- if and $https (ne (int $https) (len $x.endpoints)) }}
{{- fail (printf "etcd.external.endpoints mix https:// and http:// (%s): TLS is used exactly when the endpoints are https://, so they must all use one scheme." (join ", " $x.endpoints)) }}
{{- end }}
{{- if and $https (not (and $x.caSecret $x.clientSecret)) }}
{{- fail "etcd.external.endpoints are https://, so ExternalDNS and CoreDNS use TLS: set etcd.external.caSecret (ca.crt) and etcd.external.clientSecret (tls.crt, tls.key), Secrets in the release namespace (CoreDNS's are coredns.clientSecret and coredns.caSecret in coredns.namespace)." }}
{{- end }}
{{- if and $x.endpoints (not $https) (or $x.caSecret $x.clientSecret) }}
{{- fail "etcd.external.endpoints are http://, so nothing uses TLS and etcd.external.caSecret and etcd.external.clientSecret would be ignored: remove them, or use https:// endpoints." }}
{{- end }}
{{- end }}
{{- $e := dig "existingSecrets" dict .Values.etcd.bundled }}
{{- if and (or $e.server $e.peer $e.externalDNS) (not (and $e.server $e.peer $e.externalDNS)) }}
{{- fail "etcd.bundled.existingSecrets: name all three certificate Secrets (server, peer, externalDNS), or none to have them generated: they must come from one CA." }}
{{- end }}
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
root-only, 0600) on a control-plane node with hostPath mounts of exactly the
files it reads, read-only: the etcd CA's ca.crt and ca.key (not the peer and
server keys next to them) and, to discover the endpoints, etcd.yaml. hostPath
volumes need a namespace that admits "privileged" Pod Security (README). It
still drops every capability and has a read-only root filesystem.
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
      - --pki-dir=/etc/k2s-dns/kubeadm-etcd-ca
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
      - --manifest=/etc/k2s-dns/kubeadm-manifests/etcd.yaml
      {{- end }}
      {{- if ne (include "k2s-dns.controller.enabled" $) "true" }}
      {{- /* With a controller, it restarts CoreDNS itself when the certificates change. */}}
      - --rollout={{ $.Values.coredns.namespace }}/{{ $.Values.coredns.deployment }}
      {{- end }}
      - --rollout={{ $ns }}/{{ include "k2s-dns.externalDNS.fullname" $ }}
      - --label=app.kubernetes.io/part-of=k2s-dns
      - --label=app.kubernetes.io/instance={{ $.Release.Name }}
      - --release={{ include "k2s-dns.owner" $ }}
      {{- if $.Values.etcd.adoptExistingSecrets }}
      - --adopt
      {{- end }}
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
      - {name: etcd-ca-crt, mountPath: /etc/k2s-dns/kubeadm-etcd-ca/ca.crt, readOnly: true}
      - {name: etcd-ca-key, mountPath: /etc/k2s-dns/kubeadm-etcd-ca/ca.key, readOnly: true}
      {{- if not $c.endpoints }}
      - {name: etcd-manifest, mountPath: /etc/k2s-dns/kubeadm-manifests/etcd.yaml, readOnly: true}
      {{- end }}
volumes:
  - name: etcd-ca-crt
    hostPath: {path: {{ trimSuffix "/" $c.pkiPath }}/ca.crt, type: File}
  - name: etcd-ca-key
    hostPath: {path: {{ trimSuffix "/" $c.pkiPath }}/ca.key, type: File}
  {{- if not $c.endpoints }}
  - name: etcd-manifest
    hostPath: {path: {{ trimSuffix "/" $c.manifestsPath }}/etcd.yaml, type: File}
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
  "cacheZone" (ternary .Values.coredns.patch.cacheZone true (hasKey .Values.coredns.patch "cacheZone"))
  "nodeLocalDnsConfigmap" .Values.coredns.nodeLocalDNS.configMap
  "clusterDomain" .Values.clusterDomain
  "publicationPolicy" (and .Values.publicationPolicy.enabled (eq (include "k2s-dns.zoneInClusterDomain" .) "true"))
  "trustedNamespaces" (prepend .Values.publicationPolicy.trustedNamespaces .Release.Namespace | uniq)
  "trustedNamespaceLabel" .Values.publicationPolicy.trustedNamespaceLabel
  "sources" .Values.externalDNS.sources }}
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

{{/*
The view of the zone's server block (src/k2s_dns/corefile.py, _zone_block_lines): where the zone and the
cluster domain share names, every name the kubernetes plugin answers stays with the cluster's own block.
*/}}
{{- define "k2s-dns.coredns.viewExpr" -}}
{{- $zone := trimSuffix "." .Values.zone | lower -}}
{{- $domain := trimSuffix "." .Values.clusterDomain | lower -}}
{{- if or (eq $zone $domain) (hasSuffix (printf ".%s" $domain) $zone) (hasSuffix (printf ".%s" $zone) $domain) -}}
{{- $d := $domain | replace "." "[.]" -}}
not (name() matches '(?i)^(((.+[.])?(svc|pod)[.]|ns[.]dns[.]|dns-version[.]|(.+[.])?{{ $d }}[.])?{{ $d }}[.])$')
{{- else -}}
true
{{- end -}}
{{- end }}

{{/* "true" when zone and the cluster domain share names (one lies in the other): only then may a published
name shadow what pods look up through their search list, so only then does the publication policy apply. */}}
{{- define "k2s-dns.zoneInClusterDomain" -}}
{{- $zone := trimSuffix "." .Values.zone | lower -}}
{{- $domain := trimSuffix "." .Values.clusterDomain | lower -}}
{{- or (eq $zone $domain) (hasSuffix (printf ".%s" $domain) $zone) (hasSuffix (printf ".%s" $zone) $domain) -}}
{{- end }}

{{/*
CEL: is host `h` (lower case, no trailing dot) one the object's namespace may publish? The rule (README "Who
may publish which name"), the same as k2s_dns.policy.refusal: outside the cluster domain, yes; inside it never
what the kubernetes plugin answers; otherwise under `<namespace>.<domain>`, or anywhere for a trusted namespace.
*/}}
{{- define "k2s-dns.policy.allowed" -}}
{{- $d := trimSuffix "." .Values.clusterDomain | lower -}}
(!(h == '{{ $d }}' || h.endsWith('.{{ $d }}')) || (!(h == '{{ $d }}' || h == 'svc.{{ $d }}' || h.endsWith('.svc.{{ $d }}') || h == 'pod.{{ $d }}' || h.endsWith('.pod.{{ $d }}') || h == 'ns.dns.{{ $d }}' || h == 'dns-version.{{ $d }}' || h == '{{ $d }}.{{ $d }}' || h.endsWith('.{{ $d }}.{{ $d }}')) && (variables.trusted || h.endsWith('.' + request.namespace + '.{{ $d }}'))))
{{- end }}

{{/* The source kinds the policy covers (YAML list of {kind, group, version, resource, hosts}): one per enabled
ExternalDNS source, with the CEL list of the host names ExternalDNS reads from such an object. */}}
{{- define "k2s-dns.policy.kinds" -}}
{{- $annotations := list .Values.externalDNS.annotationPrefix }}
{{- if and .Values.externalDNS.legacyAnnotationPrefix (ne .Values.externalDNS.annotationPrefix "external-dns.alpha.kubernetes.io/") }}
{{- $annotations = append $annotations "external-dns.alpha.kubernetes.io/" }}
{{- end }}
{{- $fromAnnotations := list }}
{{- range $annotations }}
{{- $key := printf "%shostname" . }}
{{- $fromAnnotations = append $fromAnnotations (printf "(has(object.metadata.annotations) && '%s' in object.metadata.annotations ? object.metadata.annotations['%s'].split(',') : [])" $key $key) }}
{{- end }}
{{- $annotated := join " + " $fromAnnotations }}
{{- $routes := "(has(object.spec.hostnames) ? object.spec.hostnames : [])" }}
{{- range .Values.externalDNS.sources }}
{{- if eq . "ingress" }}
- {kind: Ingress, group: networking.k8s.io, version: v1, resource: ingresses, hosts: {{ printf "(has(object.spec.rules) ? object.spec.rules.map(r, has(r.host) ? r.host : '') : []) + (has(object.spec.tls) ? object.spec.tls.map(t, has(t.hosts) ? t.hosts.join(',') : '').join(',').split(',') : []) + %s" $annotated | quote }}}
{{- else if eq . "service" }}
- {kind: Service, group: "", version: v1, resource: services, hosts: {{ $annotated | quote }}}
{{- else if eq . "gateway-httproute" }}
- {kind: HTTPRoute, group: gateway.networking.k8s.io, version: "*", resource: httproutes, hosts: {{ printf "%s + %s" $routes $annotated | quote }}}
{{- else if eq . "gateway-grpcroute" }}
- {kind: GRPCRoute, group: gateway.networking.k8s.io, version: "*", resource: grpcroutes, hosts: {{ printf "%s + %s" $routes $annotated | quote }}}
{{- else if eq . "gateway-tlsroute" }}
- {kind: TLSRoute, group: gateway.networking.k8s.io, version: "*", resource: tlsroutes, hosts: {{ printf "%s + %s" $routes $annotated | quote }}}
{{- else if eq . "crd" }}
- {kind: DNSEndpoint, group: externaldns.k8s.io, version: "*", resource: dnsendpoints, hosts: "has(object.spec.endpoints) ? object.spec.endpoints.map(e, has(e.dnsName) ? e.dnsName : '') : []"}
{{- end }}
{{- end }}
{{- end }}

{{/*
Objects admitted before the publication policy that break it (k2s_dns.policy, the admission policy's rule):
CoreDNS would answer their names. `helm install`/`helm upgrade` stop and name them unless
publicationPolicy.allowExistingViolations. Ingresses and Services (hostname annotation) are looked up; lookup
finds nothing in `helm template`. Names under svc./pod. are left out: CoreDNS never answers them from etcd.
*/}}
{{- define "k2s-dns.policy.refuseExisting" -}}
{{- $p := .Values.publicationPolicy }}
{{- if and $p.enabled (not $p.allowExistingViolations) (eq (include "k2s-dns.zoneInClusterDomain" .) "true") }}
{{- $d := trimSuffix "." .Values.clusterDomain | lower }}
{{- $keys := list (printf "%shostname" .Values.externalDNS.annotationPrefix) }}
{{- if .Values.externalDNS.legacyAnnotationPrefix }}{{ $keys = append $keys "external-dns.alpha.kubernetes.io/hostname" }}{{ end }}
{{- $objects := list }}
{{- if has "ingress" .Values.externalDNS.sources }}
{{- range (lookup "networking.k8s.io/v1" "Ingress" "" "").items }}
{{- $hosts := list }}
{{- range .spec.rules }}{{ with .host }}{{ $hosts = append $hosts . }}{{ end }}{{ end }}
{{- range .spec.tls }}{{ range .hosts }}{{ $hosts = append $hosts . }}{{ end }}{{ end }}
{{- $objects = append $objects (dict "kind" "Ingress" "obj" . "hosts" $hosts) }}
{{- end }}
{{- end }}
{{- if has "service" .Values.externalDNS.sources }}
{{- range (lookup "v1" "Service" "" "").items }}
{{- $objects = append $objects (dict "kind" "Service" "obj" . "hosts" list) }}
{{- end }}
{{- end }}
{{- $found := list }}
{{- $trust := dict }}
{{- range $objects }}
{{- $o := . }}
{{- $ns := .obj.metadata.namespace }}
{{- $hosts := .hosts }}
{{- $annotations := .obj.metadata.annotations | default dict }}
{{- range $keys }}{{ with get $annotations . }}{{ $hosts = concat $hosts (splitList "," .) }}{{ end }}{{ end }}
{{- if not (hasKey $trust $ns) }}
{{- $trusted := or (eq $ns $.Release.Namespace) (has $ns $p.trustedNamespaces) }}
{{- if and (not $trusted) $p.trustedNamespaceLabel }}
{{- $labels := (lookup "v1" "Namespace" "" $ns).metadata | default dict }}
{{- $trusted = eq (get ($labels.labels | default dict) $p.trustedNamespaceLabel) "true" }}
{{- end }}
{{- $_ := set $trust $ns $trusted }}
{{- end }}
{{- if not (get $trust $ns) }}
{{- range $hosts }}
{{- $h := trim . | lower | trimSuffix "." }}
{{- $inner := trimSuffix (printf ".%s" $d) $h }}
{{- $kube := or (eq $h $d) (eq $inner "svc") (hasSuffix ".svc" $inner) (eq $inner "pod") (hasSuffix ".pod" $inner) (eq $inner "ns.dns") (eq $inner "dns-version") (eq $inner $d) (hasSuffix (printf ".%s" $d) $inner) }}
{{- if and (hasSuffix (printf ".%s" $d) $h) (not $kube) (not (hasSuffix (printf ".%s" $ns) $inner)) }}
{{- $found = append $found (printf "%s %s/%s: %s" $o.kind $ns $o.obj.metadata.name $h) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $found }}
{{- fail (printf "publicationPolicy: these objects publish names outside their namespace's part of the cluster domain %s (a namespace publishes only under <namespace>.%s), and were admitted before the policy, so CoreDNS would answer them for other pods' search lists: %s. Change their hosts, trust their namespaces (publicationPolicy.trustedNamespaces, or label the namespace %s=true), or install anyway with publicationPolicy.allowExistingViolations=true (README \"Who may publish which name\")." $d $d (join "; " $found) $p.trustedNamespaceLabel) }}
{{- end }}
{{- end }}
{{- end }}
