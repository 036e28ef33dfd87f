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
{{- if and $v.secrets.existingSecret (or $v.secrets.clientSecret $v.secrets.sessionSecret $v.secrets.samlSpKey) }}
{{- fail "secrets.existingSecret is set: leave secrets.clientSecret, sessionSecret and samlSpKey empty (they would be ignored)" }}
{{- end }}
{{- if and (not $v.secrets.create) (not $v.secrets.existingSecret) }}
{{- fail "secrets.create=false needs secrets.existingSecret (keys client-secret, session-secret)" }}
{{- end }}
{{- if and $v.secrets.create (not $v.secrets.existingSecret) (lt (len $v.secrets.sessionSecret) 32) }}
{{- fail "secrets.sessionSecret must be at least 32 bytes (openssl rand -base64 48), or use secrets.existingSecret" }}
{{- end }}
{{- if and (eq $v.config.session.store "memory") (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- fail "config.session.store=memory keeps sessions in one replica: use store=cookie with replicaCount > 1 or autoscaling" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not $v.autoscaling.enabled) (le (int $v.replicaCount) (int $v.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget.minAvailable must be below replicaCount, or no node could ever be drained" }}
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
{{- with .Values.config.headers }}
headers:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.config.trustedProxies }}
trusted_proxies:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.config.forwardAuth.enabled }}
forward_auth:
  enabled: true
  dialect: {{ .Values.config.forwardAuth.dialect | default "nginx" }}
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
    - name: AUTHGATE_CLIENT_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: client-secret
          optional: true
    - name: AUTHGATE_SESSION_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "authgate.secretName" . }}
          key: session-secret
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
{{- end }}
