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
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  # owned by their run: only its rollout workers reach its vLLM servers; with networkPolicy.enabled,
  # one admitting only metrics scrapes to its pods and one between its torch learner's pods
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  # headless, owned by their run: the torch learner's node 0 and the vLLM servers
  verbs: ["get", "create", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  # the torch learner without Kubeflow Trainer (an Indexed Job). A Job's pod template is immutable:
  # a spec change deletes the run's own job (uid precondition) and creates the new one
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["trainer.kubeflow.org"]
  resources: ["trainjobs"]
  # the torch learner where Kubeflow Trainer is installed; replaced like the Job on a spec change
  verbs: ["get", "create", "patch", "delete"]
{{- end -}}

{{/* artifactCleanup.allowedStores as QUESTA_ARTIFACT_STORES: bucket@endpoint (or bucket), comma-separated */}}
{{- define "questa.artifactStores" -}}
{{- range $i, $store := .Values.artifactCleanup.allowedStores -}}
{{- if $i }},{{ end }}{{ $store.bucket }}{{ with $store.endpoint }}@{{ . }}{{ end }}
{{- end -}}
{{- end -}}
