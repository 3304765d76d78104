{{/* Chart name, truncated to a DNS label. */}}
{{- define "questa.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "questa.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "questa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "questa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "questa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "questa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "questa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "questa.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "questa.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Rules of what the reconciler reads and writes; shared by the ClusterRole and the namespaced Role. */}}
{{- define "questa.reconcilerRules" -}}
- apiGroups: ["questa.dev"]
  resources: ["questatrainings"]
  # update: adds and removes the cleanup finalizer
  verbs: ["get", "list", "watch", "update"]
- apiGroups: ["questa.dev"]
  resources: ["questatrainings/status"]
  verbs: ["patch"]
- apiGroups: ["questa.dev"]
  resources: ["questatrainings/finalizers"]
  # owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  # server-side apply is a patch; applying an object that does not exist yet creates it
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.networkPolicy.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  # one per run, owned by it: admits only metrics scrapes to the run's pods
  verbs: ["get", "create", "patch"]
{{- end }}
{{- end -}}

{{/* artifactCleanup.allowedStores as QUESTA_ARTIFACT_STORES: bucket@endpoint (or bucket), comma-separated */}}
{{- define "questa.artifactStores" -}}
{{- range $i, $store := .Values.artifactCleanup.allowedStores -}}
{{- if $i }},{{ end }}{{ $store.bucket }}{{ with $store.endpoint }}@{{ . }}{{ end }}
{{- end -}}
{{- end -}}
