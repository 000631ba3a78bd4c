{{/* Names. */}}
{{- define "procforest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "procforest.fullname" -}}
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

{{- define "procforest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "procforest.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The scheduler's client Service (ready pods only) and registration Service. */}}
{{- define "procforest.schedulerService" -}}
{{- printf "%s-scheduler" (include "procforest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "procforest.registrationService" -}}
{{- printf "%s-scheduler-registration" (include "procforest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "procforest.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Labels. */}}
{{- define "procforest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "procforest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "procforest.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "procforest.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: procforest
{{- end }}

{{/* Pod labels: the workload identity label when enabled. */}}
{{- define "procforest.podLabels" -}}
{{- if .Values.serviceAccount.workloadIdentityClientId }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{/* Container security: non-root, read-only root filesystem, no capabilities. */}}
{{- define "procforest.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Environment shared by every container: settings and secrets. */}}
{{- define "procforest.envFrom" -}}
- configMapRef:
    name: {{ include "procforest.fullname" . }}
{{- range .Values.existingSecrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* Whole cores of a CPU limit ("2", "2000m", 2) for --vcores. */}}
{{- define "procforest.vcores" -}}
{{- $cpu := toString .Values.executor.resources.limits.cpu }}
{{- if hasSuffix "m" $cpu }}
{{- max 1 (div (trimSuffix "m" $cpu | atoi) 1000) }}
{{- else }}
{{- max 1 (atoi (regexReplaceAll "\\..*" $cpu "")) }}
{{- end }}
{{- end }}

{{/* The executor memory pool in bytes: memoryPoolPercent of the memory limit (Mi/Gi). */}}
{{- define "procforest.memoryPoolBytes" -}}
{{- $mem := toString .Values.executor.resources.limits.memory }}
{{- $bytes := 0 }}
{{- if hasSuffix "Gi" $mem }}
{{- $bytes = mul (trimSuffix "Gi" $mem | atoi) 1073741824 }}
{{- else if hasSuffix "Mi" $mem }}
{{- $bytes = mul (trimSuffix "Mi" $mem | atoi) 1048576 }}
{{- else }}
{{- fail "executor.resources.limits.memory must be given in Mi or Gi" }}
{{- end }}
{{- div (mul $bytes .Values.executor.memoryPoolPercent) 100 }}
{{- end }}
