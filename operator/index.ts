export {
  type ArtifactAccess,
  type ArtifactLocation,
  type ArtifactStore,
  objectStoreArtifacts,
} from "./artifacts.ts";
export { type AutoscalePolicy, type AutoscaleState, decideRolloutReplicas } from "./autoscale.ts";
export { BackgroundCalls, type CallOutcome, CallTimeoutError } from "./background-calls.ts";
export { type ClusterPolicy, clusterPolicyIssues } from "./cluster-policy.ts";
export { type ChangeType, Informer, objectKey } from "./informer.ts";
export {
  isConflict,
  isGone,
  isNotFound,
  type KubeApi,
  KubeApiError,
  type KubeObject,
  type ResourceKind,
} from "./kube-api.ts";
export { ClientNodeKubeApi, loadKubeConfig } from "./kube-client.ts";
export { LEASE, LeaderElector } from "./leader-election.ts";
export { MemoryKubeApi } from "./memory-kube-api.ts";
export { OperatorMetrics } from "./metrics.ts";
export { Operator, type OperatorOptions, startHttpServer } from "./operator.ts";
export {
  CONFIG_MAP,
  type ConsumerLagReader,
  type ControllerDeps,
  type ControllerOptions,
  DEPLOYMENT,
  type KafkaRefusal,
  NETWORK_POLICY,
  QUESTA_TRAINING,
  QuestATrainingController,
  type RunKafka,
} from "./questatraining-controller.ts";
export { buildConfigMap } from "./resources/config-map.ts";
export {
  derivedRunNames,
  FINALIZER,
  FUNCTIONS,
  type FunctionName,
  legacyRunNames,
  type RunNames,
} from "./resources/names.ts";
export { buildNetworkPolicy, type NetworkPolicyOptions } from "./resources/network-policy.ts";
export { runTopics } from "./resources/topics.ts";
export { buildWorkload } from "./resources/workloads.ts";
export { RunEventTracker } from "./run-events.ts";
export { emptyProgress, foldRunEvent, foldRunEvents, type RunProgress } from "./run-progress.ts";
export { type ConditionNote, deriveStatus, type StatusInput, type StatusResult } from "./run-status.ts";
export { MemoryTopicAdmin, type TopicAdmin } from "./topic-admin.ts";
export { WorkQueue } from "./work-queue.ts";
