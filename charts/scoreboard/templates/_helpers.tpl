{{/* Names and labels shared by every template. */}}

{{- define "sb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: scoreboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "score"). */}}
{{- define "sb.selector" -}}
app.kubernetes.io/name: scoreboard
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository:tag, plus @digest when one is pinned: (dict "repository" r "tag" t "digest" d). */}}
{{- define "sb.imageRef" -}}
{{- printf "%s:%s" .repository .tag -}}{{- with .digest }}@{{ . }}{{- end -}}
{{- end -}}

{{/* One of our four images: (dict "root" $ "component" "score"). The tag follows appVersion. */}}
{{- define "sb.image" -}}
{{- $image := .root.Values.image -}}
{{- $override := get ($image.overrides | default dict) .component -}}
{{- if $override -}}{{ $override }}{{- else -}}
{{- $name := printf "scoreboard-%s" .component -}}
{{- $repository := ternary (printf "%s/%s" (trimSuffix "/" $image.registry) $name) $name (ne $image.registry "") -}}
{{- include "sb.imageRef" (dict "repository" $repository "tag" ($image.tag | default .root.Chart.AppVersion) "digest" (get ($image.digests | default dict) .component)) -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount a component's pods run as: (dict "root" $ "component" "score"). */}}
{{- define "sb.serviceAccountName" -}}
{{- printf "%s-%s" (include "sb.fullname" .root) .component -}}
{{- end -}}

{{/*
When the migration hook runs: an in-cluster PostgreSQL does not exist before
the first install, so with one it runs after install instead.
*/}}
{{- define "sb.migrateHook" -}}
{{- ternary "post-install,pre-upgrade" "pre-install,pre-upgrade" .Values.inCluster.postgres.enabled -}}
{{- end -}}

{{- define "sb.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "sb.fullname" .)) -}}
{{- end -}}

{{/* Secret holding one datastore URL: (dict "root" $ "store" "postgres"). */}}
{{- define "sb.storeSecretRef" -}}
{{- $store := index .root.Values.datastores .store -}}
{{- $inCluster := (index .root.Values.inCluster .store).enabled -}}
{{- if and (not $inCluster) $store.existingSecret.name -}}
name: {{ $store.existingSecret.name }}
key: {{ $store.existingSecret.key }}
{{- else -}}
name: {{ include "sb.fullname" .root }}-datastores
key: {{ $store.existingSecret.key }}
{{- end -}}
{{- end -}}

{{/* URL a store gets when the chart writes the datastores Secret. */}}
{{- define "sb.storeUrl" -}}
{{- $fullname := include "sb.fullname" .root -}}
{{- $in := index .root.Values.inCluster .store -}}
{{- if $in.enabled -}}
{{- if eq .store "postgres" -}}postgres://postgres:{{ $in.password }}@{{ $fullname }}-postgres:5432/scoreboard
{{- else if eq .store "redis" -}}redis://{{ $fullname }}-redis:6379
{{- else -}}nats://{{ $fullname }}-nats:4222
{{- end -}}
{{- else -}}
{{- (index .root.Values.datastores .store).url -}}
{{- end -}}
{{- end -}}

{{- define "sb.storeEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- include "sb.storeSecretRef" (dict "root" .root "store" .store) | nindent 6 }}
{{- end -}}

{{/* Environment every process shares. */}}
{{- define "sb.commonEnv" -}}
- name: NODE_ENV
  value: {{ .Values.nodeEnv | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
{{- if .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .Values.tracing.otlpProtocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .Values.tracing.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.tracing.samplerArg | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,deployment.environment=%s" .Release.Namespace .Values.nodeEnv | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Fully qualified name of a component's headless Service: (dict "root" $ "component" "score"). */}}
{{- define "sb.podsHost" -}}
{{- printf "%s-%s-pods.%s.svc.%s" (include "sb.fullname" .root) .component .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/*
A service's gRPC target for the processes' clients: grpc-js resolves dns:///
to every ready pod's address and balances calls round robin over them, on
the gRPC-only port. (dict "root" $ "component" "ranking")
*/}}
{{- define "sb.grpcTarget" -}}
{{- printf "dns:///%s:%v" (include "sb.podsHost" .) (index .root.Values .component).grpcPort -}}
{{- end -}}

{{/*
Connection lifetime and keepalive of service-to-service gRPC (every process).
int64: numbers from values files are floats, which quote writes as 8.64e+07.
*/}}
{{- define "sb.grpcEnv" -}}
- name: GRPC_MAX_CONNECTION_AGE_MS
  value: {{ int64 .Values.grpc.maxConnectionAgeMs | quote }}
{{- with .Values.grpc.keepaliveTimeMs }}
- name: GRPC_KEEPALIVE_TIME_MS
  value: {{ int64 . | quote }}
{{- end }}
{{- end -}}

{{/* JWT variables (score, gateway). */}}
{{- define "sb.authEnv" -}}
- name: JWT_ISSUER
  value: {{ .Values.config.jwtIssuer | quote }}
- name: JWT_AUDIENCE
  value: {{ .Values.config.jwtAudience | quote }}
- name: JWT_CLOCK_TOLERANCE_S
  value: {{ .Values.config.jwtClockToleranceS | quote }}
{{- if .Values.config.jwtJwksUrl }}
- name: JWT_JWKS_URL
  value: {{ .Values.config.jwtJwksUrl | quote }}
{{- end }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef: { name: {{ include "sb.secretName" . }}, key: JWT_SECRET, optional: true }
{{- end -}}

{{/* Event sealing keys (score, ranking). */}}
{{- define "sb.eventEnv" -}}
{{- range list "EVENT_HMAC_KEYS" "EVENT_HMAC_KEY_ID" "EVENT_ENCRYPTION_KEYS" "EVENT_ENCRYPTION_KEY_ID" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef: { name: {{ include "sb.secretName" $ }}, key: {{ . }} }
{{- end }}
{{- end -}}

{{/* How score and ranking create the JetStream streams (root context). */}}
{{- define "sb.jetstreamEnv" -}}
- name: JETSTREAM_REPLICAS
  value: {{ .Values.jetstream.replicas | quote }}
- name: JETSTREAM_STORAGE
  value: {{ .Values.jetstream.storage | quote }}
{{- end -}}

{{/* Component-specific extra env map: (dict "env" .Values.score.env). */}}
{{- define "sb.extraEnv" -}}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "sb.podAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{- define "sb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: { drop: [ALL] }
{{- end -}}

{{/* Node placement every pod shares (root context). */}}
{{- define "sb.nodeScheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Scheduling of one-off pods (the Jobs): node placement and .Values.affinity as given. */}}
{{- define "sb.scheduling" -}}
{{- include "sb.nodeScheduling" . }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Scheduling of a replicated component (dict "root" $ "component" "score"):
its replicas avoid sharing a node (spread.podAntiAffinity) and spread over
zones and nodes (spread.topologySpread). Both select only this component's
pods: a gateway never pushes a score pod away. .Values.affinity is merged
over this, its keys winning (a nodeAffinity is simply added).
*/}}
{{- define "sb.replicaScheduling" -}}
{{- $spread := .root.Values.spread -}}
{{- $own := dict "matchLabels" (include "sb.selector" . | fromYaml) -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" $own -}}
{{- $antiAffinity := dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term)) -}}
{{- if eq $spread.podAntiAffinity "required" -}}
{{- $antiAffinity = dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term) -}}
{{- end -}}
{{- $affinity := merge (deepCopy (.root.Values.affinity | default dict)) (dict "podAntiAffinity" $antiAffinity) -}}
{{- include "sb.nodeScheduling" .root }}
affinity: {{- toYaml $affinity | nindent 2 }}
{{- if $spread.topologySpread.enabled }}
# matchLabelKeys: only the current ReplicaSet's pods count, so the old ones
# do not skew a rollout (Kubernetes 1.27+; earlier releases ignore it).
topologySpreadConstraints:
  {{- range $spread.topologySpread.topologyKeys }}
  - topologyKey: {{ . }}
    maxSkew: {{ $spread.topologySpread.maxSkew }}
    whenUnsatisfiable: {{ $spread.topologySpread.whenUnsatisfiable }}
    labelSelector: {{- toYaml $own | nindent 6 }}
    matchLabelKeys: [pod-template-hash]
  {{- end }}
{{- end }}
{{- end -}}

{{/*
A component's ServiceAccount, without an API token: (dict "root" $
"component" "score"), "annotations" adding to serviceAccounts.annotations.<component>.
*/}}
{{- define "sb.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "sb.serviceAccountName" . }}
  labels:
    {{- include "sb.labels" .root | nindent 4 }}
    {{- include "sb.selector" . | nindent 4 }}
  {{- with merge (.annotations | default dict) (get (.root.Values.serviceAccounts.annotations | default dict) .component | default dict) }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
