{{/* Full name of the release's objects: the release name, or <release>-llamafleet. */}}
{{- define "llamafleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator pods (never change: they are the Deployment selector). */}}
{{- define "llamafleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object of the chart. */}}
{{- define "llamafleet.labels" -}}
{{ include "llamafleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "llamafleet.serviceAccountName" -}}
{{- default (include "llamafleet.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "llamafleet.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "llamafleet.agentTag" -}}
{{- default .Chart.AppVersion .Values.agent.image.tag -}}
{{- end -}}

{{- define "llamafleet.agentImage" -}}
{{- printf "%s:%s" .Values.agent.image.repository (include "llamafleet.agentTag" .) -}}
{{- end -}}

{{/* A GPU build: its own repository and tag, else agent.image's with the tag suffix given. */}}
{{- define "llamafleet.gpuAgentImage" -}}
{{- $image := .image | default dict -}}
{{- $repository := default .root.Values.agent.image.repository $image.repository -}}
{{- $tag := default (printf "%s%s" (include "llamafleet.agentTag" .root) .suffix) $image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{- define "llamafleet.agentImageCuda" -}}
{{- include "llamafleet.gpuAgentImage" (dict "root" . "image" .Values.agent.cudaImage "suffix" "-cuda13") -}}
{{- end -}}

{{- define "llamafleet.agentImageVulkan" -}}
{{- include "llamafleet.gpuAgentImage" (dict "root" . "image" .Values.agent.vulkanImage "suffix" "-vulkan") -}}
{{- end -}}

{{/* Labels that select the node-cache DaemonSet's pods (never change: they are its selector). */}}
{{- define "llamafleet.nodeCacheSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-cache
{{- end -}}

{{/* Labels of the node-cache DaemonSet and its pods. */}}
{{- define "llamafleet.nodeCacheLabels" -}}
{{ include "llamafleet.nodeCacheSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
