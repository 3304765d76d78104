/**
 * How questa launches its PyTorch learner (pure: the environment, the core count and a free port
 * come in as values). Every learner pod runs `questa function learn`, whose process starts
 * `torchrun` with c10d rendezvous (static rendezvous hung at exit in 2 of 8 runs, c10d never); the
 * process whose Python child is global rank 0 drives the learner, the others are node agents.
 */
import { z } from "zod";
import type { LearnerSpec } from "../contracts/questatraining.ts";
import type { TorchReady } from "../contracts/torch-learner-protocol.ts";
import { schemaInputError } from "../runtime/errors.ts";

/** the module torchrun starts in every process (torch-learner/questa_torch_learner) */
export const TORCH_LEARNER_MODULE = "questa_torch_learner";

export interface TorchLaunchPlan {
  nodes: number;
  processesPerNode: number;
  /** `host:port` of the c10d rendezvous */
  rendezvous: string;
  /** the same on every node of one job */
  rendezvousId: string;
  /** intra-op threads of each process */
  threads: number;
}

/**
 * What Kubeflow Trainer's torch runtime (and the operator's Indexed-Job fallback) set on every
 * learner pod; torchrun's own names (PET_ = its options from the environment).
 */
export const TorchrunEnvSchema = z.object({
  PET_NNODES: z.coerce.number().int().min(1).max(1024),
  PET_NPROC_PER_NODE: z.coerce.number().int().min(1).max(64),
  PET_NODE_RANK: z.coerce.number().int().min(0).optional(),
  PET_MASTER_ADDR: z.string().min(1),
  PET_MASTER_PORT: z.coerce.number().int().min(1).max(65535),
});

/** one process per core or GPU at most; each process gets an equal share of the cores */
export function threadsPerProcess(cores: number, processes: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, processes)));
}

/** processes on one node: learner.torch.processesPerNode, else one per GPU, else one */
export function processesPerNode(learner: Pick<LearnerSpec, "torch" | "resources">): number {
  return learner.torch.processesPerNode ?? (learner.resources.gpus > 0 ? learner.resources.gpus : 1);
}

/**
 * The launch of this node: from the PET_* variables when the pod has them (all of them, or an
 * InputError naming each that is wrong), else one node rendezvousing on 127.0.0.1 at `freePort`
 * (an embedded run, a test, `questa run --kafka`).
 */
export function torchLaunchPlan(options: {
  learner: Pick<LearnerSpec, "torch" | "resources">;
  env: Record<string, string | undefined>;
  cores: number;
  run: string;
  freePort: number;
}): TorchLaunchPlan {
  const { env, learner } = options;
  const rendezvousId = options.run.replace(/[^A-Za-z0-9_-]/g, "-");
  const present = Object.entries(env).filter(([k, v]) => k.startsWith("PET_") && v !== undefined && v !== "");
  if (present.length === 0) {
    const processes = processesPerNode(learner);
    return {
      nodes: 1,
      processesPerNode: processes,
      rendezvous: `127.0.0.1:${options.freePort}`,
      rendezvousId,
      threads: threadsPerProcess(options.cores, processes),
    };
  }
  const parsed = TorchrunEnvSchema.safeParse(Object.fromEntries(present));
  if (!parsed.success) {
    throw schemaInputError("invalid_torchrun_environment", parsed.error, {
      hint: "Kubeflow Trainer or the operator's learner Job sets PET_NNODES, PET_NPROC_PER_NODE, PET_MASTER_ADDR and PET_MASTER_PORT together",
    });
  }
  const pet = parsed.data;
  return {
    nodes: pet.PET_NNODES,
    processesPerNode: pet.PET_NPROC_PER_NODE,
    rendezvous: `${pet.PET_MASTER_ADDR}:${pet.PET_MASTER_PORT}`,
    rendezvousId,
    threads: threadsPerProcess(options.cores, pet.PET_NPROC_PER_NODE),
  };
}

/** `python -m torch.distributed.run` (= torchrun) arguments for the plan */
export function torchrunArguments(
  plan: TorchLaunchPlan,
  paths: { workDir: string; schemasDir: string },
): string[] {
  return [
    "-m",
    "torch.distributed.run",
    "--nnodes",
    String(plan.nodes),
    "--nproc-per-node",
    String(plan.processesPerNode),
    "--rdzv-backend",
    "c10d",
    "--rdzv-endpoint",
    plan.rendezvous,
    "--rdzv-id",
    plan.rendezvousId,
    // a failed process ends the job: questa restarts the pod, which resumes from its checkpoint
    "--max-restarts",
    "0",
    "-m",
    TORCH_LEARNER_MODULE,
    "--workdir",
    paths.workDir,
    "--schemas",
    paths.schemasDir,
    "--threads",
    String(plan.threads),
  ];
}

/**
 * The environment of torchrun: ours without the PET_* variables (the arguments say it all, and
 * torchrun would read them as its options' defaults), with the learner package importable and
 * one OpenMP pool of `threads` per process that sleeps between parallel regions (spinning threads
 * of several processes on shared cores slowed PyTorch down 5-50x, scripts/reference/README.md).
 */
export function torchrunEnvironment(
  env: Record<string, string | undefined>,
  plan: TorchLaunchPlan,
  packageDir: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith("PET_")) out[k] = v;
  out.PYTHONPATH = env.PYTHONPATH ? `${packageDir}:${env.PYTHONPATH}` : packageDir;
  out.PYTHONUNBUFFERED = "1";
  out.OMP_NUM_THREADS = String(plan.threads);
  out.OMP_WAIT_POLICY ??= "PASSIVE";
  return out;
}

/** the node whose Python child is global rank 0 drives the learner; the others are node agents */
export function isDriver(ready: Pick<TorchReady, "rank">): boolean {
  return ready.rank === 0;
}
