{{- define "authgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authgate.fullname" -}}
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

{{- define "authgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "authgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "authgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The bundled Redis's pods: labels of their own (authgate's selectors never match them). */}}
{{- define "authgate.redisLabels" -}}
app.kubernetes.io/name: {{ include "authgate.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "authgate.assertionSecretName" -}}
{{- .Values.assertion.existingSecret | default (printf "%s-assertion" (include "authgate.fullname" .)) -}}
{{- end }}

{{- define "authgate.secretName" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.existingSecret }}{{ else }}{{ include "authgate.fullname" . }}{{ end }}
{{- end }}

{{/* Contradictory values fail here, with a sentence saying what to change. */}}
{{- define "authgate.validate" -}}
{{- $v := .Values }}
{{- if not $v.config.publicUrl }}
{{- fail "config.publicUrl is required: the URL browsers use to reach authgate (e.g. https://app.example.com)" }}
{{- end }}
{{- if not $v.config.providers }}
{{- fail "config.providers needs at least one identity provider" }}
{{- end }}
{{- if and (eq $v.mode "standalone") (not $v.config.routes) }}
{{- fail "config.routes is required in standalone mode (which upstreams authgate protects)" }}
{{- end }}
{{- if and (eq $v.mode "sidecar") (not $v.sidecar.app.image) }}
{{- fail "mode=sidecar needs sidecar.app.image: the app container authgate sits in front of" }}
{{- end }}
{{- if and $v.secrets.existingSecret (or $v.secrets.clientSecret $v.secrets.sessionSecret $v.secrets.samlSpKey $v.secrets.redisPassword $v.secrets.adminToken $v.secrets.scimToken) }}
{{- fail "secrets.existingSecret is set: leave secrets.clientSecret, sessionSecret, samlSpKey, redisPassword, adminToken and scimToken empty (they would be ignored)" }}
{{- end }}
{{- if and (not $v.secrets.create) (not $v.secrets.existingSecret) }}
{{- fail "secrets.create=false needs secrets.existingSecret (keys client-secret, session-secret)" }}
{{- end }}
{{- if and $v.secrets.create (not $v.secrets.existingSecret) (lt (len $v.secrets.sessionSecret) 32) }}
{{- fail "secrets.sessionSecret must be at least 32 bytes (openssl rand -base64 48), or use secrets.existingSecret" }}
{{- end }}
{{- if and (eq $v.config.session.store "memory") (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- fail "config.session.store=memory keeps sessions in one replica: use store=redis (or cookie) with replicaCount > 1 or autoscaling" }}
{{- end }}
{{- $r := $v.config.session.redis }}
{{- $wantsRedis := or (eq $v.config.session.store "redis") (eq $v.config.session.revocation "redis") }}
{{- $given := add (ternary 1 0 (ne $r.url "")) (ternary 1 0 (ne $r.sentinel.serviceName "")) (ternary 1 0 (gt (len $r.cluster.nodes) 0)) (ternary 1 0 $v.redisBundled.enabled) }}
{{- if and $wantsRedis (ne (int $given) 1) }}
{{- fail "config.session.store=redis (or revocation=redis) needs exactly one of config.session.redis.url, .sentinel, .cluster, or redisBundled.enabled" }}
{{- end }}
{{- if and (not $wantsRedis) (gt (int $given) 0) }}
{{- fail "config.session.redis (or redisBundled) is set but unused: set config.session.store=redis" }}
{{- end }}
{{- if and (eq $v.config.session.revocation "redis") (ne $v.config.session.store "cookie") }}
{{- fail "config.session.revocation=redis applies to store=cookie only (store=redis shares revocations already)" }}
{{- end }}
{{- if and (ne $r.sentinel.serviceName "") (not $r.sentinel.nodes) }}
{{- fail "config.session.redis.sentinel.serviceName needs sentinel.nodes (the Sentinels' host:port)" }}
{{- end }}
{{- if and $r.usePassword $v.secrets.create (not $v.secrets.existingSecret) (not $v.secrets.redisPassword) }}
{{- fail "config.session.redis.usePassword needs secrets.redisPassword (or secrets.existingSecret with key redis-password)" }}
{{- end }}
{{- if and $v.adminApi.enabled $v.secrets.create (not $v.secrets.existingSecret) (lt (len $v.secrets.adminToken) 24) }}
{{- fail "adminApi.enabled needs secrets.adminToken of at least 24 bytes (openssl rand -base64 32), or secrets.existingSecret with key admin-token" }}
{{- end }}
{{- if and $v.scim.enabled $v.secrets.create (not $v.secrets.existingSecret) (lt (len $v.secrets.scimToken) 24) }}
{{- fail "scim.enabled needs secrets.scimToken of at least 24 bytes (openssl rand -base64 32: paste the same value into Entra as the Secret Token), or secrets.existingSecret with key scim-token" }}
{{- end }}
{{- if and $v.scim.enabled (not $wantsRedis) (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- fail "scim.enabled with several replicas needs config.session.store=redis (or revocation=redis): the provisioned directory and deprovisionings must reach every replica" }}
{{- end }}
{{- if and $v.redisBundled.enabled $r.usePassword }}
{{- fail "redisBundled runs without a password (trials only): leave config.session.redis.usePassword false" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not $v.autoscaling.enabled) (le (int $v.replicaCount) (int $v.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget.minAvailable must be below replicaCount, or no node could ever be drained" }}
{{- end }}
{{- if and $v.workloadIdentity.enabled (not $v.workloadIdentity.clientId) }}
{{- fail "workloadIdentity.enabled needs workloadIdentity.clientId: the Entra app's client ID (the ServiceAccount's azure.workload.identity/client-id)" }}
{{- end }}
{{- if and $v.workloadIdentity.enabled $v.secrets.clientSecret }}
{{- fail "workloadIdentity.enabled: leave secrets.clientSecret empty (the federated token replaces it)" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: a kubernetes.io/tls Secret with tls.crt and tls.key (cert-manager's Certificate.spec.secretName)" }}
{{- end }}
{{- if and $v.tls.enabled (not (hasPrefix "https://" $v.config.publicUrl)) }}
{{- fail "tls.enabled: config.publicUrl must be https://" }}
{{- end }}
{{- if and $v.config.forwardAuth.enabled (not $v.config.forwardAuth.trustedProxies) }}
{{- fail "config.forwardAuth.enabled needs config.forwardAuth.trustedProxies (the ingress controllers' pod CIDR)" }}
{{- end }}
{{- end }}

{{/* The gateway.yaml authgate reads. */}}
{{- define "authgate.config" -}}
listen: ["0.0.0.0:{{ .Values.containerPort }}"]
public_url: {{ .Values.config.publicUrl | quote }}
admin:
  listen: "0.0.0.0:{{ .Values.adminPort }}"
  {{- if .Values.adminApi.enabled }}
  api_token: "${AUTHGATE_ADMIN_TOKEN}"
  {{- end }}
{{- if .Values.tls.enabled }}
tls:
  cert_file: /etc/authgate/tls/tls.crt
  key_file: /etc/authgate/tls/tls.key
  http2: {{ .Values.tls.http2 }}
  min_version: {{ .Values.tls.minVersion | quote }}
{{- end }}
server:
  threads: 0
  shutdown_grace: {{ .Values.config.shutdownGrace }}
  log_format: {{ .Values.config.logFormat }}
  watch_config: {{ .Values.config.watchConfig }}
providers:
{{- toYaml .Values.config.providers | nindent 2 }}
routes:
{{- if .Values.config.routes }}
{{- toYaml .Values.config.routes | nindent 2 }}
{{- else }}
  - name: {{ .Values.sidecar.app.name }}
    upstream: "127.0.0.1:{{ .Values.sidecar.app.port }}"
{{- end }}
session:
  cookie_name: {{ .Values.config.session.cookieName }}
  lifetime: {{ .Values.config.session.lifetime }}
  idle_timeout: {{ .Values.config.session.idleTimeout }}
  store: {{ .Values.config.session.store }}
  secure: {{ hasPrefix "https://" .Values.config.publicUrl }}
  secret: "${AUTHGATE_SESSION_SECRET}"
  {{- with .Values.config.session.cookieDomain }}
  cookie_domain: {{ . | quote }}
  {{- end }}
  {{- $r := .Values.config.session.redis }}
  {{- if eq .Values.config.session.revocation "redis" }}
  revocation: redis
  {{- end }}
  {{- if or (eq .Values.config.session.store "redis") (eq .Values.config.session.revocation "redis") }}
  redis:
    {{- if .Values.redisBundled.enabled }}
    url: redis://{{ include "authgate.fullname" . }}-redis:6379/0
    {{- else if $r.url }}
    url: {{ $r.url | quote }}
    {{- else if $r.sentinel.serviceName }}
    sentinel:
      service_name: {{ $r.sentinel.serviceName | quote }}
      nodes: {{ toJson $r.sentinel.nodes }}
    {{- else }}
    cluster:
      nodes: {{ toJson $r.cluster.nodes }}
    {{- end }}
    {{- if $r.tls }}
    tls: true
    {{- end }}
    {{- if $r.usePassword }}
    password: "${AUTHGATE_REDIS_PASSWORD}"
    {{- end }}
    key_prefix: {{ $r.keyPrefix | quote }}
    unavailable_grace: {{ $r.unavailableGrace }}
  {{- end }}
{{- if .Values.assertion.enabled }}
assertion:
  key_files: [/etc/authgate/assertion/assertion-keys.pem]
  header: {{ .Values.assertion.header | quote }}
  lifetime: {{ .Values.assertion.lifetime }}
{{- end }}
{{- with .Values.config.headers }}
headers:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.config.hosts }}
hosts:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.config.allowedRedirectHosts }}
allowed_redirect_hosts:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.config.trustedProxies }}
trusted_proxies:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.scim.enabled }}
scim:
  token: "${AUTHGATE_SCIM_TOKEN}"
  match: {{ .Values.scim.match }}
  {{- with .Values.scim.headers }}
  headers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.scim.webhook.url }}
  webhook:
    url: {{ .Values.scim.webhook.url | quote }}
    timeout: {{ .Values.scim.webhook.timeout }}
    on_failure: {{ .Values.scim.webhook.onFailure }}
  {{- end }}
{{- end }}
{{- if .Values.config.forwardAuth.enabled }}
forward_auth:
  enabled: true
  dialect: {{ .Values.config.forwardAuth.dialect | default "nginx" }}
  {{- with .Values.config.forwardAuth.envoyPathPrefix }}
  envoy_path_prefix: {{ . | quote }}
  {{- end }}
  trusted_proxies:
{{- toYaml .Values.config.forwardAuth.trustedProxies | nindent 4 }}
{{- end }}
{{- end }}

{{/* The authgate container, shared by both modes. */}}
{{- define "authgate.container" -}}
- name: authgate
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "-c", "/etc/authgate/gateway.yaml"]
  ports:
    - name: http
      containerPort: {{ .Values.containerPort }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.adminPort }}
      protocol: TCP
  env:
    {{- if not .Values.workloadIdentity.enabled }}
    - name: AUTHGATE_CLIENT_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: client-secret
          optional: true
    {{- end }}
    - name: AUTHGATE_SESSION_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: session-secret
    {{- if .Values.config.session.redis.usePassword }}
    - name: AUTHGATE_REDIS_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: redis-password
    {{- end }}
    {{- if .Values.scim.enabled }}
    - name: AUTHGATE_SCIM_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: scim-token
    {{- end }}
    {{- if .Values.adminApi.enabled }}
    - name: AUTHGATE_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: admin-token
    {{- end }}
  livenessProbe:
    httpGet: {path: /healthz, port: admin}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /readyz, port: admin}
    periodSeconds: 5
    failureThreshold: 2
  {{- if .Values.preStopSleepSeconds }}
  lifecycle:
    # Let endpoints controllers stop sending traffic before the drain starts
    # (the sleep action needs Kubernetes 1.30+; set preStopSleepSeconds: 0 on older clusters).
    preStop:
      sleep: {seconds: {{ .Values.preStopSleepSeconds }}}
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/authgate
      readOnly: true
    - name: tmp
      mountPath: /tmp
    {{- if or .Values.secrets.samlSpKey .Values.secrets.existingSecret }}
    - name: saml-sp-key
      mountPath: /etc/authgate/saml
      readOnly: true
    {{- end }}
    {{- if .Values.tls.enabled }}
    # Mounted as a directory (not subPath), so a renewed Secret reaches the pod.
    - name: tls
      mountPath: /etc/authgate/tls
      readOnly: true
    {{- end }}
    {{- if .Values.assertion.enabled }}
    # A directory too: a rotation edits the Secret, the gateway re-reads the file.
    - name: assertion-keys
      mountPath: /etc/authgate/assertion
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
