{{/*
=====================================================================================================
gate-sidecar named templates
=====================================================================================================

Public (stable, for other charts):

  gate-sidecar.container   the sidecar container, as ONE LIST ITEM ("- name: gate-sidecar ...")
  gate-sidecar.volumes     the pod volumes it mounts, as LIST ITEMS (names start "gate-sidecar-")
  gate-sidecar.configmap   the whole ConfigMap object holding its config file
  gate-sidecar.configChecksum   sha256 of that config, for a pod annotation that rolls the pod

All of them take a chart context whose .Values has this chart's values layout (sidecar, keys,
vault, config...), plus .Release, .Chart and .Capabilities. Another chart gets exactly that by
depending on this chart and passing the subchart's own context, `(index .Subcharts "gate-sidecar")`:

  # Chart.yaml of your chart
  dependencies:
    - name: gate-sidecar
      version: 0.1.0
      repository: file://../gate-sidecar        # or wherever you publish it

  # values.yaml of your chart
  gate-sidecar:
    workload: {enabled: false}                   # render nothing of its own: you include it
    keys:
      - {name: futures-bot, port: 8082, policy: futures-only, source: {vault: {path: gate/futures-bot}}}

  # templates/gate-sidecar-config.yaml of your chart
  {{ include "gate-sidecar.configmap" (index .Subcharts "gate-sidecar") }}

  # templates/deployment.yaml of your chart, in the pod template
  metadata:
    annotations:
      checksum/gate-sidecar: {{ include "gate-sidecar.configChecksum" (index .Subcharts "gate-sidecar") }}
  spec:
    serviceAccountName: my-bot        # the ServiceAccount your Vault role is bound to
    initContainers:                   # native sidecar (sidecar.native=true, Kubernetes 1.29+);
      {{- include "gate-sidecar.container" (index .Subcharts "gate-sidecar") | nindent 8 }}
    containers:                       # with sidecar.native=false, include it here instead
      - name: my-bot
        env: [{name: GATE_SIDECAR_URL, value: "http://127.0.0.1:8082"}]
    volumes:
      {{- include "gate-sidecar.volumes" (index .Subcharts "gate-sidecar") | nindent 8 }}

The container runs as UID/GID 10001 and reads its token and key files through the group: keep the
pod's securityContext.fsGroup at 10001 (as this chart's podSecurityContext does). A key with
socket: true listens in the volume gate-sidecar-sockets: mount it into your bot too, read-only, at
/var/run/gate-sidecar/sockets.
Everything else below is private to this chart and may change.
*/}}

{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "gate-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gate-sidecar.fullname" -}}
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

{{/* A name derived from the fullname: (dict "ctx" . "suffix" "config"). */}}
{{- define "gate-sidecar.childName" -}}
{{- $base := include "gate-sidecar.fullname" .ctx | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{- define "gate-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gate-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gate-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gate-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The bot pod's labels: the NetworkPolicy, PDB and admin Service select exactly these. */}}
{{- define "gate-sidecar.podSelectorLabels" -}}
{{ include "gate-sidecar.selectorLabels" . }}
app.kubernetes.io/component: bot
{{- end }}

{{- define "gate-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gate-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gate-sidecar.configName" -}}
{{- include "gate-sidecar.childName" (dict "ctx" . "suffix" "config") }}
{{- end }}

{{- define "gate-sidecar.adminServiceName" -}}
{{- include "gate-sidecar.childName" (dict "ctx" . "suffix" "admin") }}
{{- end }}

{{/* repository[:tag][@digest]: (dict "image" .Values.x.image "default" "fallback tag") */}}
{{- define "gate-sidecar.imageRef" -}}
{{- $tag := default .default .image.tag }}
{{- .image.repository }}{{ with $tag }}:{{ . }}{{ end }}{{ with .image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* ---------------------------------------------------------------- paths */}}

{{- define "gate-sidecar.configDir" -}}/etc/gate-sidecar{{- end }}
{{- define "gate-sidecar.vaultTokenDir" -}}/var/run/secrets/gate-sidecar/vault{{- end }}
{{- define "gate-sidecar.vaultCADir" -}}/var/run/secrets/gate-sidecar/vault-ca{{- end }}
{{- define "gate-sidecar.keysDir" -}}/var/run/secrets/gate-sidecar/keys{{- end }}
{{- define "gate-sidecar.clientAuthDir" -}}/var/run/secrets/gate-sidecar/client-auth{{- end }}
{{- define "gate-sidecar.metricsTokenDir" -}}/var/run/secrets/gate-sidecar/metrics{{- end }}
{{- define "gate-sidecar.socketsDir" -}}/var/run/gate-sidecar/sockets{{- end }}
{{- define "gate-sidecar.redisAuthDir" -}}/var/run/secrets/gate-sidecar/redis{{- end }}

{{/* ---------------------------------------------------------------- admin listener */}}

{{/* "true" when an address (a string) is loopback, as the sidecar decides it. */}}
{{- define "gate-sidecar.isLoopback" -}}
{{- if or (hasPrefix "127." .) (eq . "::1") (eq . "localhost") }}true{{ end }}
{{- end }}

{{/* "true" when the admin listener stays on loopback (then the probes are exec probes). */}}
{{- define "gate-sidecar.adminIsLoopback" -}}
{{- include "gate-sidecar.isLoopback" .Values.sidecar.admin.address }}
{{- end }}

{{/* host:port, with [brackets] around an IPv6 host. */}}
{{- define "gate-sidecar.adminListen" -}}
{{- $a := .Values.sidecar.admin.address }}
{{- if contains ":" $a }}[{{ $a }}]{{ else }}{{ $a }}{{ end }}:{{ int .Values.sidecar.admin.port }}
{{- end }}

{{/* A probe on the admin listener: (dict "ctx" . "path" "/readyz" "settings" {...}). */}}
{{- define "gate-sidecar.probe" -}}
{{- $admin := .ctx.Values.sidecar.admin }}
{{- if include "gate-sidecar.adminIsLoopback" .ctx }}
{{- $host := ternary (printf "[%s]" $admin.address) $admin.address (contains ":" $admin.address) }}
exec:
  command:
    - python
    - -c
    - "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
    - {{ printf "http://%s:%d%s" $host (int $admin.port) .path | quote }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: sidecar-admin
{{- end }}
{{- with .settings }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- key listeners */}}

{{/* A key's TCP address: its address value, or 127.0.0.1. */}}
{{- define "gate-sidecar.keyAddress" -}}
{{- default "127.0.0.1" .address }}
{{- end }}

{{/* A key's listen value: unix:<socketsDir>/<name>.sock, or host:port ([v6]:port). */}}
{{- define "gate-sidecar.keyListen" -}}
{{- if .key.socket }}
{{- printf "unix:%s/%s.sock" (include "gate-sidecar.socketsDir" .ctx) .key.name }}
{{- else }}
{{- $a := include "gate-sidecar.keyAddress" .key }}
{{- if contains ":" $a }}[{{ $a }}]{{ else }}{{ $a }}{{ end }}:{{ int .key.port }}
{{- end }}
{{- end }}

{{/* Where the bot reaches a TCP key: the loopback form of a wildcard address, else the address. */}}
{{- define "gate-sidecar.keyURL" -}}
{{- $a := include "gate-sidecar.keyAddress" . }}
{{- $host := $a }}
{{- if eq $a "0.0.0.0" }}{{ $host = "127.0.0.1" }}{{ else if eq $a "::" }}{{ $host = "::1" }}{{ end }}
{{- $scheme := ternary "https" "http" (and (hasKey . "client_auth") (hasKey (default dict .client_auth) "tls")) }}
{{- if contains ":" $host }}{{ $host = printf "[%s]" $host }}{{ end }}
{{- printf "%s://%s:%d" $scheme $host (int .port) }}
{{- end }}

{{/* The environment variable suffix of a key: upper case, - as _. */}}
{{- define "gate-sidecar.keyEnv" -}}
{{- .name | upper | replace "-" "_" }}
{{- end }}

{{/* "true" when a key's client_auth holds a token or a client CA (safe beyond loopback). */}}
{{- define "gate-sidecar.keyAuthenticates" -}}
{{- $auth := default dict .client_auth }}
{{- $ca := dict }}
{{- with $auth.tls }}{{ $ca = default dict .clientCA }}{{ end }}
{{- if or $auth.tokenSecret $ca.configMapName $ca.secretName }}true{{ end }}
{{- end }}

{{/* The config file's client_auth for a key, file paths where the chart mounts its Secrets. */}}
{{- define "gate-sidecar.clientAuthConfig" -}}
{{- $auth := default dict .key.client_auth }}
{{- $dir := printf "%s/%s" (include "gate-sidecar.clientAuthDir" .ctx) .key.name }}
{{- $out := pick $auth "peer_uids" "peer_gids" }}
{{- if $auth.tokenSecret }}
{{- $_ := set $out "token_file" (printf "%s/token" $dir) }}
{{- end }}
{{- with $auth.tls }}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) }}
{{- $ca := default dict .clientCA }}
{{- if or $ca.configMapName $ca.secretName }}
{{- $_ := set $tls "client_ca_file" (printf "%s/client-ca.crt" $dir) }}
{{- end }}
{{- $_ := set $out "tls" $tls }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
Headers the sidecar never forwards, so never accepts in forward_headers (sidecar/gate/headers.py:
NEVER_FORWARDED and HOP_BY_HOP, plus every x-forwarded-*); tests/test_helm.py holds the two lists
equal.
*/}}
{{- define "gate-sidecar.unforwardable" -}}
key sign timestamp authorization cookie x-sidecar-token forwarded x-real-ip x-forwarded-for x-forwarded-host x-forwarded-proto connection keep-alive proxy-authenticate proxy-authorization proxy-connection te trailer transfer-encoding upgrade host content-length expect
{{- end }}

{{/* Problems in one key's listener and client_auth: (dict "ctx" . "key" $key "where" "keys[0]"). */}}
{{- define "gate-sidecar.validateKey" -}}
{{- $key := .key }}
{{- $where := .where }}
{{- $auth := default dict $key.client_auth }}
{{- if $key.socket }}
{{- if hasKey $key "port" }}
{{- fail (printf "%s: set port (a TCP listener) or socket: true (a unix socket), not both" $where) }}
{{- end }}
{{- if $key.address }}
{{- fail (printf "%s.address: only for a TCP listener, and this key has socket: true" $where) }}
{{- end }}
{{- else }}
{{- if not (hasKey $key "port") }}
{{- fail (printf "%s.port: required (or socket: true for a unix socket)" $where) }}
{{- end }}
{{- $address := include "gate-sidecar.keyAddress" $key }}
{{- if and (not (include "gate-sidecar.isLoopback" $address)) (not (include "gate-sidecar.keyAuthenticates" $key)) }}
{{- fail (printf "%s.client_auth: address %s lets other pods reach the key; set client_auth.tokenSecret, or client_auth.tls with a clientCA (mTLS): the sidecar refuses to start otherwise" $where $address) }}
{{- end }}
{{- range $name := list "peer_uids" "peer_gids" }}
{{- if hasKey $auth $name }}
{{- fail (printf "%s.client_auth.%s: only applies to a unix socket (set socket: true instead of port)" $where $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- with $auth.tls }}
{{- $ca := default dict .clientCA }}
{{- if and $ca.configMapName $ca.secretName }}
{{- fail (printf "%s.client_auth.tls.clientCA: set configMapName or secretName, not both" $where) }}
{{- end }}
{{- if and (hasKey . "clientCA") (not (or $ca.configMapName $ca.secretName)) }}
{{- fail (printf "%s.client_auth.tls.clientCA: set configMapName or secretName" $where) }}
{{- end }}
{{- end }}
{{- $never := splitList " " (include "gate-sidecar.unforwardable" .ctx) }}
{{- range $j, $header := default list $key.forward_headers }}
{{- $lower := lower $header }}
{{- if or (has $lower $never) (hasPrefix "x-forwarded-" $lower) }}
{{- fail (printf "%s.forward_headers[%d]: %q is a credential, forwarding or hop-by-hop header: the sidecar never forwards it" $where $j $header) }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- checks */}}

{{/* Problems the schema cannot express; fails the render with a message naming the value. */}}
{{- define "gate-sidecar.validate" -}}
{{- $v := .Values }}
{{- if and $v.sidecar.native (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "sidecar.native=true needs Kubernetes 1.29+ (native sidecar containers), this cluster is %s: set sidecar.native=false" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and (eq $v.workload.kind "Job") (not $v.sidecar.native) }}
{{- fail "workload.kind=Job needs sidecar.native=true: a classic sidecar container never exits, so the Job would never complete" }}
{{- end }}
{{- if and $v.vault.caCert.configMapName $v.vault.caCert.secretName }}
{{- fail "vault.caCert: set configMapName or secretName, not both" }}
{{- end }}
{{- if and $v.serviceMonitor.enabled (include "gate-sidecar.adminIsLoopback" .) }}
{{- fail "serviceMonitor.enabled needs sidecar.admin.address off loopback (Prometheus scrapes the pod IP)" }}
{{- end }}
{{- $names := dict }}
{{- $ports := dict (toString (int $v.sidecar.admin.port)) "sidecar.admin.port" }}
{{- range $i, $key := $v.keys }}
{{- $where := printf "keys[%d]" $i }}
{{- if hasKey $names $key.name }}
{{- fail (printf "%s.name: duplicate key name %q (also %s)" $where $key.name (get $names $key.name)) }}
{{- end }}
{{- $_ := set $names $key.name $where }}
{{- include "gate-sidecar.validateKey" (dict "ctx" $ "key" $key "where" $where) }}
{{- if hasKey $key "port" }}
{{- $port := toString (int $key.port) }}
{{- if hasKey $ports $port }}
{{- fail (printf "%s.port: %s is already used by %s" $where $port (get $ports $port)) }}
{{- end }}
{{- $_ := set $ports $port (printf "%s.port" $where) }}
{{- end }}
{{- if and (or (hasKey $key.source "vault") (hasKey $key.source "vault_transit")) (not $v.vault.enabled) }}
{{- fail (printf "%s.source: a Vault source needs vault.enabled=true" $where) }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- the config file */}}

{{/*
The sidecar's config file, built as data and dumped once (so quoting is always right). Key
listeners are always 127.0.0.1:<port>: only containers of this pod can reach them.
*/}}
{{- define "gate-sidecar.config" -}}
{{- $v := .Values }}
{{- $cfg := dict }}
{{- range $section := list "upstream" "server" "logging" "clock" }}
{{- with index (default dict $v.config) $section }}
{{- $_ := set $cfg $section (deepCopy .) }}
{{- end }}
{{- end }}
{{- $admin := dict "listen" (include "gate-sidecar.adminListen" .) "allow_remote" (not (include "gate-sidecar.adminIsLoopback" .)) }}
{{- if $v.sidecar.admin.metricsToken.secretName }}
{{- $_ := set $admin "metrics_token_file" (printf "%s/token" (include "gate-sidecar.metricsTokenDir" .)) }}
{{- end }}
{{- $_ := set $cfg "admin" $admin }}
{{- if $v.vault.enabled }}
{{- $auth := dict "method" "kubernetes" "role" $v.vault.role "mount" $v.vault.authMount "jwt_file" (printf "%s/token" (include "gate-sidecar.vaultTokenDir" .)) }}
{{- $vault := dict "address" $v.vault.address "refresh_interval_s" $v.vault.refreshIntervalSeconds "timeout_s" $v.vault.timeoutSeconds "auth" $auth }}
{{- with $v.vault.namespace }}
{{- $_ := set $vault "namespace" . }}
{{- end }}
{{- if or $v.vault.caCert.configMapName $v.vault.caCert.secretName }}
{{- $_ := set $vault "ca_file" (printf "%s/%s" (include "gate-sidecar.vaultCADir" .) $v.vault.caCert.key) }}
{{- end }}
{{- $_ := set $cfg "vault" $vault }}
{{- end }}
{{- $keys := list }}
{{- range $key := $v.keys }}
{{- $out := omit $key "port" "address" "socket" "source" "client_auth" }}
{{- $_ := set $out "listen" (include "gate-sidecar.keyListen" (dict "ctx" $ "key" $key)) }}
{{- if not (or $key.socket (include "gate-sidecar.isLoopback" (include "gate-sidecar.keyAddress" $key))) }}
{{- $_ := set $out "allow_remote" true }}
{{- end }}
{{- $auth := include "gate-sidecar.clientAuthConfig" (dict "ctx" $ "key" $key) | fromJson }}
{{- if $auth }}
{{- $_ := set $out "client_auth" $auth }}
{{- end }}
{{- with $key.source.kubernetesSecret }}
{{- $file := dict "path" (printf "%s/%s/credentials" (include "gate-sidecar.keysDir" $) $key.name) }}
{{- with .poll_interval_s }}
{{- $_ := set $file "poll_interval_s" . }}
{{- end }}
{{- $_ := set $out "source" (dict "file" $file) }}
{{- else }}
{{- $_ := set $out "source" (deepCopy $key.source) }}
{{- end }}
{{- /* A shared budget's Redis credentials: the files of redis.auth's Secret, unless set. */}}
{{- if and $key.rate_limit $v.redis.auth.secretName }}
{{- $rl := deepCopy $key.rate_limit }}
{{- if and $rl.shared (not $rl.shared_password_file) }}
{{- $_ := set $rl "shared_password_file" (printf "%s/password" (include "gate-sidecar.redisAuthDir" $)) }}
{{- if $v.redis.auth.usernameKey }}
{{- $_ := set $rl "shared_username_file" (printf "%s/username" (include "gate-sidecar.redisAuthDir" $)) }}
{{- end }}
{{- end }}
{{- $_ := set $out "rate_limit" $rl }}
{{- end }}
{{- $keys = append $keys $out }}
{{- end }}
{{- $_ := set $cfg "keys" $keys }}
{{- toYaml $cfg }}
{{- end }}

{{- define "gate-sidecar.configChecksum" -}}
{{- include "gate-sidecar.config" . | sha256sum }}
{{- end }}

{{/* ---------------------------------------------------------------- public templates */}}

{{/*
The sidecar container's tunables: files/sidecar-defaults.json (a link to the file the injector
renders its container from, sidecar/injector/sidecar-defaults.json: one source for both), with
sidecar.resources, .securityContext, .probes and .tmpSizeLimit merged on top, field by field.
*/}}
{{- define "gate-sidecar.sidecarSettings" -}}
{{- $d := .Files.Get "files/sidecar-defaults.json" | fromJson }}
{{- if not $d.securityContext }}
{{- fail "files/sidecar-defaults.json is missing or unreadable (it links to sidecar/injector/sidecar-defaults.json)" }}
{{- end }}
{{- $v := pick .Values.sidecar "resources" "securityContext" "probes" }}
{{- with .Values.sidecar.tmpSizeLimit }}{{ $_ := set $v "tmpSizeLimit" . }}{{ end }}
{{- toJson (mergeOverwrite $d (deepCopy $v)) }}
{{- end }}

{{/* The ConfigMap object. Usage: see the header of this file. */}}
{{- define "gate-sidecar.configmap" -}}
{{- include "gate-sidecar.validate" . }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "gate-sidecar.configName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "gate-sidecar.labels" . | nindent 4 }}
data:
  config.yaml: |
    # Generated by the gate-sidecar chart from its values: change the values, not this file.
    {{- include "gate-sidecar.config" . | nindent 4 }}
{{- end }}

{{/* The sidecar container, one list item. Usage: see the header of this file. */}}
{{- define "gate-sidecar.container" -}}
{{- $s := .Values.sidecar -}}
{{- $d := include "gate-sidecar.sidecarSettings" . | fromJson -}}
- name: {{ $s.name }}
  image: {{ include "gate-sidecar.imageRef" (dict "image" $s.image "default" .Chart.AppVersion) | quote }}
  imagePullPolicy: {{ $s.image.pullPolicy }}
  {{- if $s.native }}
  # A native sidecar: started before the main containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--config", "{{ include "gate-sidecar.configDir" . }}/config.yaml"]
  {{- with $s.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: sidecar-admin
      containerPort: {{ int $s.admin.port }}
      protocol: TCP
  startupProbe:
    {{- include "gate-sidecar.probe" (dict "ctx" . "path" "/readyz" "settings" $d.probes.startup) | trim | nindent 4 }}
  readinessProbe:
    {{- include "gate-sidecar.probe" (dict "ctx" . "path" "/readyz" "settings" $d.probes.readiness) | trim | nindent 4 }}
  livenessProbe:
    {{- include "gate-sidecar.probe" (dict "ctx" . "path" "/healthz" "settings" $d.probes.liveness) | trim | nindent 4 }}
  resources:
    {{- toYaml $d.resources | nindent 4 }}
  securityContext:
    {{- toYaml $d.securityContext | nindent 4 }}
  volumeMounts:
    - name: gate-sidecar-config
      mountPath: {{ include "gate-sidecar.configDir" . }}
      readOnly: true
    - name: gate-sidecar-tmp
      mountPath: /tmp
    {{- if .Values.vault.enabled }}
    - name: gate-sidecar-vault-token
      mountPath: {{ include "gate-sidecar.vaultTokenDir" . }}
      readOnly: true
    {{- end }}
    {{- if or .Values.vault.caCert.configMapName .Values.vault.caCert.secretName }}
    - name: gate-sidecar-vault-ca
      mountPath: {{ include "gate-sidecar.vaultCADir" . }}
      readOnly: true
    {{- end }}
    {{- range $i, $key := .Values.keys }}
    {{- if $key.source.kubernetesSecret }}
    - name: gate-sidecar-key-{{ $i }}
      mountPath: {{ include "gate-sidecar.keysDir" $ }}/{{ $key.name }}
      readOnly: true
    {{- end }}
    {{- if include "gate-sidecar.keyHasAuthFiles" $key }}
    - name: gate-sidecar-auth-{{ $i }}
      mountPath: {{ include "gate-sidecar.clientAuthDir" $ }}/{{ $key.name }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- if .Values.sidecar.admin.metricsToken.secretName }}
    - name: gate-sidecar-metrics-token
      mountPath: {{ include "gate-sidecar.metricsTokenDir" . }}
      readOnly: true
    {{- end }}
    {{- if include "gate-sidecar.hasSockets" . }}
    - name: gate-sidecar-sockets
      mountPath: {{ include "gate-sidecar.socketsDir" . }}
    {{- end }}
    {{- if .Values.redis.auth.secretName }}
    - name: gate-sidecar-redis-auth
      mountPath: {{ include "gate-sidecar.redisAuthDir" . }}
      readOnly: true
    {{- end }}
    {{- with $s.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The sidecar's pod volumes, list items. Usage: see the header of this file. */}}
{{- define "gate-sidecar.volumes" -}}
- name: gate-sidecar-config
  configMap:
    name: {{ include "gate-sidecar.configName" . }}
    defaultMode: 0444
- name: gate-sidecar-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ (include "gate-sidecar.sidecarSettings" . | fromJson).tmpSizeLimit }}
{{- if .Values.vault.enabled }}
- name: gate-sidecar-vault-token
  projected:
    defaultMode: 0440
    sources:
      # Only Vault accepts a token with this audience; it expires and the kubelet refreshes it.
      - serviceAccountToken:
          audience: {{ .Values.vault.audience | quote }}
          expirationSeconds: {{ int .Values.vault.tokenExpirationSeconds }}
          path: token
{{- end }}
{{- with .Values.vault.caCert }}
{{- if .configMapName }}
- name: gate-sidecar-vault-ca
  configMap:
    name: {{ .configMapName }}
    defaultMode: 0444
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- else if .secretName }}
- name: gate-sidecar-vault-ca
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0444
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- range $i, $key := .Values.keys }}
{{- with $key.source.kubernetesSecret }}
- name: gate-sidecar-key-{{ $i }}
  secret:
    secretName: {{ .name }}
    defaultMode: 0440
    items:
      - key: {{ default "credentials" .key }}
        path: credentials
{{- end }}
{{- if include "gate-sidecar.keyHasAuthFiles" $key }}
{{- $auth := $key.client_auth }}
# The key's client token, TLS certificate and key, client CA: read-only, this container only.
- name: gate-sidecar-auth-{{ $i }}
  projected:
    defaultMode: 0440
    sources:
      {{- with $auth.tokenSecret }}
      - secret:
          name: {{ .name }}
          items:
            - key: {{ default "token" .key }}
              path: token
      {{- end }}
      {{- with $auth.tls }}
      - secret:
          name: {{ .secretName }}
          items:
            - key: {{ default "tls.crt" .certKey }}
              path: tls.crt
            - key: {{ default "tls.key" .keyKey }}
              path: tls.key
      {{- with .clientCA }}
      - {{ if .configMapName }}configMap{{ else }}secret{{ end }}:
          name: {{ default .secretName .configMapName }}
          items:
            - key: {{ default "ca.crt" .key }}
              path: client-ca.crt
      {{- end }}
      {{- end }}
{{- end }}
{{- end }}
{{- with $.Values.redis.auth }}
{{- if .secretName }}
- name: gate-sidecar-redis-auth
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      - key: {{ .passwordKey }}
        path: password
      {{- if .usernameKey }}
      - key: {{ .usernameKey }}
        path: username
      {{- end }}
{{- end }}
{{- end }}
{{- with .Values.sidecar.admin.metricsToken }}
{{- if .secretName }}
- name: gate-sidecar-metrics-token
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      - key: {{ default "token" .key }}
        path: token
{{- end }}
{{- end }}
{{- if include "gate-sidecar.hasSockets" . }}
# The keys' unix sockets: written by the sidecar, connected to by the bot.
- name: gate-sidecar-sockets
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end }}

{{/* "true" when a key's client_auth has files to mount (a token, a TLS certificate). */}}
{{- define "gate-sidecar.keyHasAuthFiles" -}}
{{- $auth := default dict .client_auth }}
{{- if or $auth.tokenSecret $auth.tls }}true{{ end }}
{{- end }}

{{/* "true" when a key listens on a unix socket. */}}
{{- define "gate-sidecar.hasSockets" -}}
{{- range .Values.keys }}{{ if .socket }}true{{ end }}{{ end }}
{{- end }}

{{/* ---------------------------------------------------------------- the bot pod */}}

{{- define "gate-sidecar.botContainer" -}}
{{- $b := .Values.bot -}}
- name: {{ $b.name }}
  image: {{ include "gate-sidecar.imageRef" (dict "image" $b.image "default" "") | quote }}
  imagePullPolicy: {{ $b.image.pullPolicy }}
  {{- with $b.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $b.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if or $b.injectSidecarEnv $b.env }}
  env:
    {{- if $b.injectSidecarEnv }}
    {{- range $i, $key := .Values.keys }}
    {{- $suffixes := ternary (list "" (printf "_%s" (include "gate-sidecar.keyEnv" $key))) (list (printf "_%s" (include "gate-sidecar.keyEnv" $key))) (eq $i 0) }}
    {{- range $suffix := $suffixes }}
    {{- if $key.socket }}
    - name: GATE_SIDECAR_SOCKET{{ $suffix }}
      value: {{ printf "%s/%s.sock" (include "gate-sidecar.socketsDir" $) $key.name | quote }}
    {{- else }}
    - name: GATE_SIDECAR_URL{{ $suffix }}
      value: {{ include "gate-sidecar.keyURL" $key | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- with $b.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $b.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $b.ports }}
  ports:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $b.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $b.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $b.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $b.resources | nindent 4 }}
  securityContext:
    {{- toYaml $b.securityContext | nindent 4 }}
  volumeMounts:
    - name: bot-tmp
      mountPath: /tmp
    {{- if include "gate-sidecar.hasSockets" . }}
    # Connecting to a unix socket needs no write access to its directory.
    - name: gate-sidecar-sockets
      mountPath: {{ include "gate-sidecar.socketsDir" . }}
      readOnly: true
    {{- end }}
    {{- with $b.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The pod spec shared by the Deployment and the Job. */}}
{{- define "gate-sidecar.podSpec" -}}
serviceAccountName: {{ include "gate-sidecar.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.sidecar.native }}
initContainers:
  {{- include "gate-sidecar.container" . | nindent 2 }}
{{- end }}
containers:
  {{- include "gate-sidecar.botContainer" . | nindent 2 }}
  {{- if not .Values.sidecar.native }}
  {{- include "gate-sidecar.container" . | nindent 2 }}
  {{- end }}
volumes:
  {{- include "gate-sidecar.volumes" . | nindent 2 }}
  - name: bot-tmp
    emptyDir:
      medium: Memory
      sizeLimit: {{ .Values.bot.tmpSizeLimit }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* The pod template's metadata: labels, and the config checksum that rolls the pod. */}}
{{- define "gate-sidecar.podMetadata" -}}
annotations:
  checksum/config: {{ include "gate-sidecar.configChecksum" . }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
labels:
  {{- include "gate-sidecar.labels" . | nindent 2 }}
  app.kubernetes.io/component: bot
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
