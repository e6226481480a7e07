{{/* Chart name, or nameOverride. */}}
{{- define "wsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name used for resources: release-chart, or fullnameOverride. */}}
{{- define "wsgate.fullname" -}}
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

{{- define "wsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "wsgate.commonLabels" -}}
helm.sh/chart: {{ include "wsgate.chart" . }}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Gateway labels and selector. The component label keeps the dev Redis out of them. */}}
{{- define "wsgate.labels" -}}
{{ include "wsgate.commonLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "wsgate.redisLabels" -}}
{{ include "wsgate.commonLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "wsgate.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "wsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wsgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wsgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* Secret holding WSGATE_REDIS_URL, and its key. */}}
{{- define "wsgate.redisSecretName" -}}
{{- if and .Values.redis.existingSecret (not .Values.redis.dev.enabled) }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- printf "%s-redis-url" (include "wsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "wsgate.redisSecretKey" -}}
{{- if and .Values.redis.existingSecret (not .Values.redis.dev.enabled) }}
{{- .Values.redis.existingSecretKey }}
{{- else -}}
redis-url
{{- end }}
{{- end }}

{{- define "wsgate.devRedisName" -}}
{{- printf "%s-redis" (include "wsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The URL the chart stores in its own Secret. */}}
{{/* WSGATE_REDIS_URL from redis.sentinel.addresses; the master's password comes in by
Kubernetes' $(REDIS_MASTER_PASSWORD) expansion, from the Secret the user names. */}}
{{- define "wsgate.sentinelUrl" -}}
{{- $s := .Values.redis.sentinel }}
{{- printf "%s://%s%s/%s?db=%d" (ternary "rediss+sentinel" "redis+sentinel" $s.tls) (ternary ":$(REDIS_MASTER_PASSWORD)@" "" (not (empty $s.masterPasswordSecret))) (join "," $s.addresses) $s.masterName (int $s.db) }}
{{- end }}

{{/* WSGATE_REDIS_URL from redis.cluster.seeds; the password comes in by Kubernetes'
$(REDIS_PASSWORD) expansion, from the Secret the user names. */}}
{{- define "wsgate.clusterUrl" -}}
{{- $c := .Values.redis.cluster }}
{{- printf "%s://%s%s" (ternary "rediss+cluster" "redis+cluster" $c.tls) (ternary (printf "%s:$(REDIS_PASSWORD)@" $c.user) "" (not (empty $c.passwordSecret))) (join "," $c.seeds) }}
{{- end }}

{{/* True (non-empty) when the chart builds WSGATE_REDIS_URL as a plain env value (Sentinel
addresses or cluster seeds listed) rather than reading it from a Secret. */}}
{{- define "wsgate.redisUrlInline" -}}
{{- if or .Values.redis.sentinel.addresses (.Values.redis.cluster | default dict).seeds }}true{{ end }}
{{- end }}

{{- define "wsgate.redisUrl" -}}
{{- if .Values.redis.dev.enabled }}
{{- printf "redis://%s:6379/0" (include "wsgate.devRedisName" .) }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds, computed so that it always exceeds the preStop sleep plus the
gateway's drain timeout: a rolling update then drains every connection with 1001.
*/}}
{{- define "wsgate.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.gateway.drainTimeoutSeconds .Values.shutdown.extraGraceSeconds }}
{{- end }}

{{/* Settings that cannot be expressed in the schema; rendered (empty) by every template that uses values. */}}
{{- define "wsgate.validate" -}}
{{- range $k := list "WSGATE_LISTEN" "WSGATE_NODE_ID" "WSGATE_REDIS_URL" "WSGATE_DRAIN_TIMEOUT" "WSGATE_API_KEY_FILE" "WSGATE_API_LISTEN" "WSGATE_JWT_HMAC_SECRET_FILE" "WSGATE_ANONYMOUS_SUBSCRIBE" "WSGATE_ANONYMOUS_PUBLISH" "WSGATE_JWT_ISSUER" "WSGATE_JWT_AUDIENCE" "WSGATE_JWT_LEEWAY" "WSGATE_ALLOWED_ORIGINS" "WSGATE_MAX_CONNECTIONS_PER_IP" "WSGATE_HISTORY_CHANNELS" "WSGATE_CLIENT_STORE_BYTES" "WSGATE_DEMO_PAGE" "WSGATE_MAX_HTTP_CONNECTIONS_PER_IP" "WSGATE_REDIS_TLS_CA_FILE" "WSGATE_REDIS_TLS_CERT_FILE" "WSGATE_REDIS_TLS_KEY_FILE" "WSGATE_REDIS_TLS_SERVER_NAME" "WSGATE_REDIS_SENTINEL_USER" "WSGATE_REDIS_SENTINEL_PASSWORD" }}
{{- if hasKey $.Values.gateway.extraEnv $k }}
{{- fail (printf "gateway.extraEnv.%s: this variable is set by the chart; use gateway.port, gateway.drainTimeoutSeconds, gateway.allowedOrigins, gateway.maxConnectionsPerIp, the redis.*, api.* or access.* values" $k) }}
{{- end }}
{{- end }}
{{- $pk := .Values.access.jwt.publicKeys | default dict }}
{{- if and $pk.kids (not $pk.existingSecret) }}
{{- fail "access.jwt.publicKeys.kids needs access.jwt.publicKeys.existingSecret: the Secret holding the <kid>.pem files" }}
{{- end }}
{{- if and $pk.existingSecret (not $pk.kids) }}
{{- fail (printf "access.jwt.publicKeys.existingSecret needs access.jwt.publicKeys.kids: list the kids to load from Secret %q (one key <kid>.pem each)" $pk.existingSecret) }}
{{- end }}
{{- range $pk.kids }}
{{- if hasSuffix ".pem" . }}
{{- fail (printf "access.jwt.publicKeys.kids: %q is a file name; list the kid %q (the chart mounts Secret key <kid>.pem)" . (trimSuffix ".pem" .)) }}
{{- end }}
{{- end }}
{{- if and $pk.existingSecret (hasKey .Values.gateway.extraEnv "WSGATE_JWT_PUBLIC_KEY_FILES") }}
{{- fail "gateway.extraEnv.WSGATE_JWT_PUBLIC_KEY_FILES and access.jwt.publicKeys are both set: the chart sets this variable from access.jwt.publicKeys.kids" }}
{{- end }}
{{- if not (or .Values.access.anonymousSubscribe .Values.access.anonymousPublish (include "wsgate.jwtSecretName" .) (include "wsgate.jwtPublicKeyFiles" .) (hasKey .Values.gateway.extraEnv "WSGATE_JWT_PUBLIC_KEY_FILES")) }}
{{- fail "no access configured, so nobody could subscribe or publish: set access.jwt.generateHmacSecret, access.jwt.existingSecret or access.jwt.publicKeys (existingSecret and kids), or access.anonymousSubscribe / access.anonymousPublish" }}
{{- end }}
{{- if and .Values.api.listen (not .Values.api.existingSecret) }}
{{- fail "api.listen needs api.existingSecret: without keys the publish API is off" }}
{{- end }}
{{- if and .Values.api.listen (eq (int .Values.api.listen) (int .Values.gateway.port)) }}
{{- fail "api.listen must differ from gateway.port (or be 0 to serve the API on gateway.port)" }}
{{- end }}
{{- if and .Values.redis.dev.enabled .Values.redis.existingSecret }}
{{- fail "redis.dev.enabled and redis.existingSecret are both set: choose the development Redis or an external one" }}
{{- end }}
{{- if not (or .Values.redis.dev.enabled .Values.redis.existingSecret .Values.redis.url) }}
{{- fail "no Redis configured: set redis.url, redis.existingSecret, or redis.dev.enabled=true" }}
{{- end }}
{{- $sen := .Values.redis.sentinel | default dict }}
{{- if and $sen.addresses .Values.redis.dev.enabled }}
{{- fail "redis.sentinel.addresses and redis.dev.enabled exclude each other" }}
{{- end }}
{{- if and $sen.user (not $sen.existingSecret) }}
{{- fail "redis.sentinel.user needs redis.sentinel.existingSecret (the Sentinels' password)" }}
{{- end }}
{{- if and (or $sen.user $sen.existingSecret $sen.masterPasswordSecret $sen.tls) (not $sen.addresses) (or .Values.redis.dev.enabled (and (not .Values.redis.existingSecret) (not (regexMatch "^rediss?\\+sentinel://" .Values.redis.url)))) }}
{{- fail "redis.sentinel.* needs redis.sentinel.addresses or a redis+sentinel:// redis.url (or redis.existingSecret holding one)" }}
{{- end }}
{{- $cl := .Values.redis.cluster | default dict }}
{{- if and $cl.seeds .Values.redis.dev.enabled }}
{{- fail "redis.cluster.seeds and redis.dev.enabled exclude each other" }}
{{- end }}
{{- if and $cl.seeds $sen.addresses }}
{{- fail "redis.cluster.seeds and redis.sentinel.addresses exclude each other: choose one Redis mode" }}
{{- end }}
{{- if and $cl.user (not $cl.passwordSecret) }}
{{- fail "redis.cluster.user needs redis.cluster.passwordSecret (the user's password)" }}
{{- end }}
{{- if and (or $cl.user $cl.passwordSecret $cl.tls) (not $cl.seeds) }}
{{- fail "redis.cluster.* needs redis.cluster.seeds (or leave it empty and put a redis+cluster:// URL in redis.url or redis.existingSecret)" }}
{{- end }}
{{- if and (not $sen.addresses) (not $cl.seeds) (not .Values.redis.dev.enabled) (not .Values.redis.existingSecret) (not (regexMatch "^(redis://|rediss://|unix://|redis\\+sentinel://|rediss\\+sentinel://|redis\\+cluster://|rediss\\+cluster://)" .Values.redis.url)) }}
{{- fail (printf "redis.url must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://, got %q" .Values.redis.url) }}
{{- end }}
{{- $tls := .Values.redis.tls | default dict }}
{{- if and (or $tls.certKey $tls.keyKey) (not (and $tls.certKey $tls.keyKey)) }}
{{- fail "redis.tls.certKey and redis.tls.keyKey go together (the client certificate and its key)" }}
{{- end }}
{{- if and $tls.certKey (not $tls.existingSecret) }}
{{- fail "redis.tls.certKey needs redis.tls.existingSecret: the Secret holding the client certificate and key" }}
{{- end }}
{{- if and (or $tls.existingSecret $tls.serverName) (not (and $sen.addresses $sen.tls)) (not (and $cl.seeds $cl.tls)) (or .Values.redis.dev.enabled $sen.addresses $cl.seeds (and (not .Values.redis.existingSecret) (not (regexMatch "^rediss(\\+sentinel|\\+cluster)?://" .Values.redis.url)))) }}
{{- fail "redis.tls.* needs a rediss:// redis.url (or redis.existingSecret holding one)" }}
{{- end }}
{{- $grace := int (include "wsgate.terminationGracePeriodSeconds" .) }}
{{- if le $grace (int (add .Values.shutdown.preStopSleepSeconds .Values.gateway.drainTimeoutSeconds)) }}
{{- fail "terminationGracePeriodSeconds must exceed shutdown.preStopSleepSeconds + gateway.drainTimeoutSeconds" }}
{{- end }}
{{- end }}

{{/* The Secret holding the HMAC secret; empty when tokens are not verified with one. */}}
{{- define "wsgate.jwtSecretName" -}}
{{- if .Values.access.jwt.existingSecret }}
{{- .Values.access.jwt.existingSecret }}
{{- else if .Values.access.jwt.generateHmacSecret }}
{{- printf "%s-jwt" (include "wsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "wsgate.jwtSecretKey" -}}
{{- if .Values.access.jwt.existingSecret }}
{{- .Values.access.jwt.existingSecretKey }}
{{- else -}}
jwt-hmac-secret
{{- end }}
{{- end }}

{{/* Directory the public keys (access.jwt.publicKeys) are mounted in. */}}
{{- define "wsgate.jwtKeysDir" -}}
/etc/wsgate/jwt-keys
{{- end }}

{{/* WSGATE_JWT_PUBLIC_KEY_FILES: <dir>/<kid>.pem for each listed kid; empty without public keys. */}}
{{- define "wsgate.jwtPublicKeyFiles" -}}
{{- $pk := .Values.access.jwt.publicKeys | default dict }}
{{- if and $pk.existingSecret $pk.kids }}
{{- $dir := include "wsgate.jwtKeysDir" . }}
{{- $files := list }}
{{- range $pk.kids }}
{{- $files = append $files (printf "%s/%s.pem" $dir .) }}
{{- end }}
{{- join "," $files }}
{{- end }}
{{- end }}
