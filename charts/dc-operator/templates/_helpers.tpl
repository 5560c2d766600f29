{{/* Name of the chart, overridable. */}}
{{- define "dc-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name, plus the chart name when it is not part of it. */}}
{{- define "dc-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "dc-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dc-operator.controller.name" -}}{{ include "dc-operator.fullname" . }}-controller{{- end -}}
{{/* The controller's watched namespaces, as JSON: controller.watchNamespaces plus the deprecated controller.watchNamespace. [] : all. */}}
{{- define "dc-operator.controller.watchNamespaces" -}}
{{- $all := list -}}
{{- range .Values.controller.watchNamespaces -}}
{{- $all = append $all . -}}
{{- end -}}
{{- if .Values.controller.watchNamespace -}}
{{- $all = append $all .Values.controller.watchNamespace -}}
{{- end -}}
{{- toJson (uniq $all) -}}
{{- end -}}
{{- define "dc-operator.keyserver.name" -}}{{ include "dc-operator.fullname" . }}-keyserver{{- end -}}
{{/* Where sidecars and the controller reach the in-cluster key server: its Service, port 2407. */}}
{{- define "dc-operator.keyserver.address" -}}{{ include "dc-operator.keyserver.name" . }}.{{ .Release.Namespace }}.svc:{{ .Values.keyserver.port }}{{- end -}}
{{- define "dc-operator.webhook.name" -}}{{ include "dc-operator.fullname" . }}-webhook{{- end -}}
{{- define "dc-operator.webhook.caSecret" -}}{{ include "dc-operator.fullname" . }}-webhook-ca{{- end -}}
{{- define "dc-operator.webhook.tlsSecret" -}}{{ include "dc-operator.fullname" . }}-webhook-tls{{- end -}}

{{/* Labels on every object. */}}
{{- define "dc-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "dc-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dc-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "dc-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dc-operator.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The operator image reference. */}}
{{- define "dc-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The injected sidecar's image: its own values, else the operator image (the operator's digest only for the operator's repository). */}}
{{- define "dc-operator.sidecarImage" -}}
{{- $repo := default .Values.image.repository .Values.sidecar.image.repository -}}
{{- if .Values.sidecar.image.tag -}}
{{- printf "%s:%s" $repo .Values.sidecar.image.tag -}}
{{- else if and .Values.image.digest (not .Values.sidecar.image.repository) -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A resource map as the webhook's NAME=QUANTITY,... flag value ({cpu: 10m, memory: 32Mi} → cpu=10m,memory=32Mi). */}}
{{- define "dc-operator.resourceList" -}}
{{- $parts := list -}}
{{- range $k, $v := . -}}
{{- $parts = append $parts (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $parts -}}
{{- end -}}

{{/* Namespaces the webhook never sees: kube-system, the release namespace, and webhook.excludedNamespaces. */}}
{{- define "dc-operator.webhook.excludedNamespaces" -}}
{{- $all := list "kube-system" .Release.Namespace -}}
{{- range .Values.webhook.excludedNamespaces -}}
{{- $all = append $all . -}}
{{- end -}}
{{- toJson (uniq $all) -}}
{{- end -}}
