export { type AutoscalePolicy, type AutoscaleState, decideRolloutReplicas } from "./autoscale.ts";
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
export { OperatorMetrics } from "./metrics.ts";
export { Operator, type OperatorOptions, startHttpServer } from "./operator.ts";
export {
  CONFIG_MAP,
  type ConsumerLagReader,
  type ControllerDeps,
  type ControllerOptions,
  DEPLOYMENT,
  QUESTA_TRAINING,
  QuestATrainingController,
  type RunKafka,
} from "./questatraining-controller.ts";
export { buildConfigMap } from "./resources/config-map.ts";
export { FINALIZER, FUNCTIONS, type FunctionName } from "./resources/names.ts";
export { runTopics } from "./resources/topics.ts";
export { buildWorkload } from "./resources/workloads.ts";
export { RunEventTracker } from "./run-events.ts";
export { emptyProgress, foldRunEvent, foldRunEvents, type RunProgress } from "./run-progress.ts";
export { deriveStatus, type StatusInput, type StatusResult } from "./run-status.ts";
export { MemoryTopicAdmin, type TopicAdmin } from "./topic-admin.ts";
export { WorkQueue } from "./work-queue.ts";
