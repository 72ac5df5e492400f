{{- define "abgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "abgate.fullname" -}}
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

{{- define "abgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "abgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "abgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "abgate.labels" -}}
helm.sh/chart: {{ include "abgate.chart" . }}
app.kubernetes.io/name: {{ include "abgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: abgate
{{- end -}}

{{- define "abgate.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "abgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "abgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "abgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the env comes from. */}}
{{- define "abgate.secretName" -}}
{{- default (include "abgate.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "abgate.redis.fullname" -}}
{{- printf "%s-redis" (include "abgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Redis addresses, as a YAML list. */}}
{{- define "abgate.redis.addrs" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- list (printf "%s:6379" (include "abgate.redis.fullname" .)) | toYaml -}}
{{- else -}}
{{- required "redis.addrs: give your Redis (with AOF), or set redis.bundled.enabled" .Values.redis.addrs | toYaml -}}
{{- end -}}
{{- end -}}

{{/* The drain budget in seconds: preStop sleep, shutdown_timeout, lease
release (3s), recorder and webhook drain (10s). */}}
{{- define "abgate.drainSeconds" -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.timeoutSeconds) 13 -}}
{{- end -}}

{{- define "abgate.terminationGracePeriodSeconds" -}}
{{- $drain := int (include "abgate.drainSeconds" .) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $drain -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above the drain budget: preStopSleepSeconds + shutdown.timeoutSeconds + 13 = %d" (int .Values.terminationGracePeriodSeconds) $drain) -}}
{{- end -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $drain 5 -}}
{{- end -}}
{{- end -}}

{{/* abgate.yaml: the user's config with what the chart owns set over it. */}}
{{- define "abgate.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) -}}
{{- $server := deepCopy (default dict $cfg.server) -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy)) -}}
{{- $_ := set $server "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- $_ := set $server "token_secret" "${ABGATE_TOKEN_SECRET}" -}}
{{- $_ := set $server "shutdown_timeout" (printf "%ds" (int .Values.shutdown.timeoutSeconds)) -}}
{{- $_ := set $cfg "server" $server -}}
{{- $redis := deepCopy (default dict $cfg.redis) -}}
{{- $_ := set $redis "addrs" (include "abgate.redis.addrs" . | fromYamlArray) -}}
{{- if .Values.redis.password.existingSecret -}}
{{- $_ := set $redis "password" "${ABGATE_REDIS_PASSWORD}" -}}
{{- else -}}
{{- $_ := unset $redis "password" -}}
{{- end -}}
{{- $_ := set $cfg "redis" $redis -}}
{{- toYaml $cfg -}}
{{- end -}}
