{{/* Chart name, possibly overridden. */}}
{{- define "enquetes.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* `<release>-<chart>`, or the release name when it already contains the chart name. */}}
{{- define "enquetes.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's resources. Call with (dict "root" $ "name" $name). */}}
{{- define "enquetes.serviceName" -}}
{{- printf "%s-%s" (include "enquetes.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of the weekly report CronJob (52 characters at most: its Jobs add a suffix). */}}
{{- define "enquetes.weeklyReportName" -}}
{{- printf "%s-scoring-weekly-report" (include "enquetes.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "enquetes.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "enquetes.labels" -}}
helm.sh/chart: {{ include "enquetes.chart" . }}
app.kubernetes.io/name: {{ include "enquetes.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: enquetes-a-chaud
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of the whole release. */}}
{{- define "enquetes.selectorLabels" -}}
app.kubernetes.io/name: {{ include "enquetes.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one service's resources. Call with (dict "root" $ "name" $name). */}}
{{- define "enquetes.serviceLabels" -}}
{{ include "enquetes.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Selector labels of one service. Call with (dict "root" $ "name" $name). */}}
{{- define "enquetes.serviceSelectorLabels" -}}
{{ include "enquetes.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Image reference of one service. Call with (dict "root" $ "service" $svc). */}}
{{- define "enquetes.image" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (default (dict) .service.image) -}}
{{- $repository := required "image.repository is required" $image.repository -}}
{{- if eq (toString $image.tag) "latest" -}}
{{- fail "image.tag must be an exact version, not latest: pin the image you tested" -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion $image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the service container and its migration initContainer.
     Call with (dict "root" $ "name" $name "service" $svc). */}}
{{- define "enquetes.env" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
- name: ENVIRONMENT
  value: {{ $values.environment | quote }}
- name: LOG_LEVEL
  value: {{ $values.logLevel | quote }}
- name: HTTP_HOST
  value: "0.0.0.0"
- name: HTTP_PORT
  value: {{ .service.port | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "postgresql.existingSecret.name is required" $values.postgresql.existingSecret.name | quote }}
      key: {{ $values.postgresql.existingSecret.key | quote }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "kafka.bootstrapServers is required" $values.kafka.bootstrapServers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $values.kafka.securityProtocol | quote }}
{{- $serviceName := default .name .kafkaUser -}}
{{- with $values.kafka.sasl.mechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- if $values.kafkaUsers.enabled }}
{{- /* The service's own KafkaUser; Strimzi's User Operator writes its password Secret. */}}
{{- $user := include "enquetes.serviceName" (dict "root" $root "name" $serviceName) }}
- name: KAFKA_SASL_USERNAME
  value: {{ $user | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $user | quote }}
      key: password
{{- else }}
- name: KAFKA_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required when kafka.sasl.mechanism is set" $values.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.passwordSecret.name is required when kafka.sasl.mechanism is set" $values.kafka.sasl.passwordSecret.name | quote }}
      key: {{ $values.kafka.sasl.passwordSecret.key | quote }}
{{- end }}
{{- end }}
{{- if $values.kafka.tls.caSecret.name }}
- name: SSL_CERT_FILE
  value: /etc/enquetes/kafka-ca/{{ $values.kafka.tls.caSecret.key }}
{{- end }}
{{- with $values.admin.jwksUrl }}
- name: ADMIN_JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- if and (eq $values.environment "production") (not $values.admin.issuer) }}
{{- fail "admin.issuer is required when environment is production: the services refuse to start without the identity provider's issuer" }}
{{- end }}
{{- with $values.admin.issuer }}
- name: ADMIN_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $values.admin.audience }}
- name: ADMIN_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ $.name | quote }}
{{- end }}
{{- range $key, $value := $values.tracing.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- if and (has .name (list "responses" "publication")) $values.ingress.trustedProxies }}
- name: TRUSTED_PROXIES
  value: {{ join "," $values.ingress.trustedProxies | quote }}
{{- end }}
{{- range $key, $value := .service.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $key, $ref := .service.secretEnv }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- end -}}

{{/* Volume mounts shared by the service container and its migration initContainer. */}}
{{- define "enquetes.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/enquetes/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
