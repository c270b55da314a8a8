{{/*
Deployment + Services of one Scoreboard process. Each serves HTTP/1.1 and
h2c on its main port (REST/Connect/gRPC, /healthz, /readyz, /metrics) and,
for the services, gRPC between services on a second HTTP/2-only port.
(dict "root" $ "component" "score" "values" .Values.score "env" (include ...))
*/}}
{{- define "sb.workload" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $fullname := include "sb.fullname" $root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ .component }}
  labels:
    {{- include "sb.labels" $root | nindent 4 }}
    {{- include "sb.selector" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "sb.selector" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate: { maxSurge: 25%, maxUnavailable: 0 }
  template:
    metadata:
      labels:
        {{- include "sb.labels" $root | nindent 8 }}
        {{- include "sb.selector" . | nindent 8 }}
      annotations:
        {{- include "sb.podAnnotations" (dict "root" $root "port" $v.port) | nindent 8 }}
        checksum/secrets: {{ include (print $root.Template.BasePath "/secrets.yaml") $root | sha256sum }}
    spec:
      serviceAccountName: {{ include "sb.serviceAccountName" . }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- include "sb.replicaScheduling" . | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "sb.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - { name: http, containerPort: {{ $v.port }}, protocol: TCP }
            {{- if $v.grpcPort }}
            - { name: grpc, containerPort: {{ $v.grpcPort }}, protocol: TCP }
            {{- end }}
          env:
            {{- include "sb.commonEnv" $root | nindent 12 }}
            {{- include "sb.grpcEnv" $root | nindent 12 }}
            {{- .env | nindent 12 }}
            {{- include "sb.extraEnv" (dict "env" $v.env) | nindent 12 }}
          # Liveness only asks "is the event loop alive"; readiness goes false
          # on SIGTERM (NOT_SERVING) so the pod leaves the endpoints first.
          startupProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          lifecycle:
            # Endpoints and Envoy's DNS take a moment to drop the pod; keep
            # serving until then, then SIGTERM drains (≤ 15 s in the process).
            preStop:
              exec: { command: ["sleep", {{ $root.Values.preStopSleepSeconds | quote }}] }
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "sb.containerSecurity" $root | nindent 12 }}
          volumeMounts:
            - { name: tmp, mountPath: /tmp }
      volumes:
        - { name: tmp, emptyDir: { sizeLimit: 64Mi } }
---
# The main port behind one virtual IP: scraping (ServiceMonitor),
# port-forward, REST/Connect by hand. Not for service-to-service gRPC: a
# virtual IP pins each long-lived HTTP/2 connection to one pod.
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .component }}
  labels:
    {{- include "sb.labels" $root | nindent 4 }}
    {{- include "sb.selector" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "sb.selector" . | nindent 4 }}
  ports:
    - { name: http, port: {{ $v.port }}, targetPort: http, appProtocol: http }
---
# Headless: DNS answers with every ready pod, so a client balances over all
# of them and reaches pods an HPA adds. Envoy resolves the gateway's (main
# port); the gateway and push resolve the services' (gRPC-only port) through
# grpc-js, see sb.grpcTarget.
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .component }}-pods
  labels:
    {{- include "sb.labels" $root | nindent 4 }}
    {{- include "sb.selector" (dict "root" $root "component" (printf "%s-pods" .component)) | nindent 4 }}
spec:
  clusterIP: None
  # Ready pods only: a draining pod (readiness false from SIGTERM) leaves DNS
  # before it stops serving.
  publishNotReadyAddresses: false
  selector:
    {{- include "sb.selector" . | nindent 4 }}
  ports:
    {{- if $v.grpcPort }}
    - { name: grpc, port: {{ $v.grpcPort }}, targetPort: grpc, appProtocol: kubernetes.io/h2c }
    {{- else }}
    - { name: http, port: {{ $v.port }}, targetPort: http }
    {{- end }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}-{{ .component }}
  labels:
    {{- include "sb.labels" $root | nindent 4 }}
    {{- include "sb.selector" . | nindent 4 }}
spec:
  minAvailable: {{ $v.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "sb.selector" . | nindent 6 }}
{{- end }}
{{- end -}}
