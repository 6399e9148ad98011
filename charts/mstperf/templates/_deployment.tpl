{{/*
The Deployment of a stateless gRPC component (loadgen, evaluator).
Call with (dict "ctx" $ "component" "loadgen" "values" .Values.loadgen).
*/}}
{{- define "mstperf.grpcDeployment" -}}
{{- $ctx := .ctx }}
{{- $values := .values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ printf "%s-%s" (include "mstperf.fullname" $ctx) .component }}
  labels:
    {{- include "mstperf.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  replicas: {{ $values.replicas }}
  selector:
    matchLabels:
      {{- include "mstperf.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mstperf.labels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "mstperf.podCommon" (dict "ctx" $ctx "values" $values) | nindent 6 }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "mstperf.image" (dict "ctx" $ctx "image" $values.image) | quote }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          {{- with $values.extraArgs }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            - name: MSTPERF_PORT
              value: {{ $values.port | quote }}
            - name: MSTPERF_METRICS_PORT
              value: {{ $values.metricsPort | quote }}
            {{- if hasKey $values "realtimeEventLoop" }}
            - name: MSTPERF_REALTIME_EVENT_LOOP
              value: {{ ternary "true" "false" (eq $values.realtimeEventLoop true) | quote }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $values.port }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $values.metricsPort }}
              protocol: TCP
          livenessProbe:
            grpc:
              port: {{ $values.port }}
            {{- toYaml $values.livenessProbe | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ $values.port }}
            {{- toYaml $values.readinessProbe | nindent 12 }}
          {{- with $values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- $sc := deepCopy ($ctx.Values.securityContext | default dict) }}
          {{- if $values.realtimeEventLoop }}
          {{- /* CAP_SYS_NICE lets the event loop run SCHED_FIFO. Kubernetes gives an added
          capability to a non-root process only through file capabilities, which
          allowPrivilegeEscalation=false disables, so this container runs as uid 0 with every
          other capability dropped (docs/deploy.md). */}}
          {{- $caps := deepCopy (get $sc "capabilities" | default dict) }}
          {{- $_ := set $caps "add" (list "SYS_NICE") }}
          {{- $_ := set $sc "capabilities" $caps }}
          {{- $_ := set $sc "runAsUser" 0 }}
          {{- $_ := set $sc "runAsNonRoot" false }}
          {{- end }}
          {{- with $sc }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
{{- end }}
