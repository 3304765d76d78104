import { describe, expect, it } from "vitest";
import { LearnerSchema } from "../contracts/questatraining.ts";
import { InputError } from "../runtime/errors.ts";
import {
  isDriver,
  processesPerNode,
  threadsPerProcess,
  torchLaunchPlan,
  torchrunArguments,
  torchrunEnvironment,
} from "./torch-launch.ts";

const learner = (torch: Record<string, unknown> = {}, gpus = 0) =>
  LearnerSchema.parse({ engine: "torch", torch, resources: { gpus } });

describe("torch learner launch", () => {
  it("runs processesPerNode processes, else one per GPU, else one", () => {
    expect(processesPerNode(learner({ processesPerNode: 3 }, 8))).toBe(3);
    expect(processesPerNode(learner({}, 4))).toBe(4);
    expect(processesPerNode(learner({}, 0))).toBe(1);
  });

  it("shares the cores between the processes", () => {
    expect(threadsPerProcess(16, 4)).toBe(4);
    expect(threadsPerProcess(2, 2)).toBe(1);
    expect(threadsPerProcess(2, 3)).toBe(1);
    expect(threadsPerProcess(7, 2)).toBe(3);
  });

  it("rendezvouses one node on loopback without the PET_* variables", () => {
    const plan = torchLaunchPlan({
      learner: learner({ processesPerNode: 2 }),
      env: { HOME: "/root" },
      cores: 2,
      run: "ns/run.1",
      freePort: 29600,
    });
    expect(plan).toEqual({
      nodes: 1,
      processesPerNode: 2,
      rendezvous: "127.0.0.1:29600",
      rendezvousId: "ns-run-1",
      threads: 1,
    });
  });

  it("takes nodes, processes and the rendezvous from what Kubeflow Trainer or the learner Job set", () => {
    const plan = torchLaunchPlan({
      learner: learner({ processesPerNode: 2 }),
      env: {
        PET_NNODES: "4",
        PET_NPROC_PER_NODE: "8",
        PET_NODE_RANK: "2",
        PET_MASTER_ADDR: "run-learner-0.run-learner",
        PET_MASTER_PORT: "29400",
      },
      cores: 64,
      run: "r",
      freePort: 1,
    });
    expect(plan).toMatchObject({
      nodes: 4,
      processesPerNode: 8,
      rendezvous: "run-learner-0.run-learner:29400",
      threads: 8,
    });
  });

  it("names every PET_* variable that is missing or wrong", () => {
    let error: unknown;
    try {
      torchLaunchPlan({
        learner: learner(),
        env: { PET_NNODES: "two", PET_MASTER_PORT: "29400" },
        cores: 2,
        run: "r",
        freePort: 1,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    const paths = (error as InputError).issues.map((i) => i.path).sort();
    expect(paths).toEqual(["PET_MASTER_ADDR", "PET_NNODES", "PET_NPROC_PER_NODE"]);
    expect((error as InputError).message).toContain("fix: Kubeflow Trainer");
  });

  it("starts torchrun with c10d rendezvous and the learner module", () => {
    const plan = { nodes: 2, processesPerNode: 4, rendezvous: "h:29400", rendezvousId: "r", threads: 3 };
    expect(torchrunArguments(plan, { workDir: "/w", schemasDir: "/s" })).toEqual([
      "-m",
      "torch.distributed.run",
      "--nnodes",
      "2",
      "--nproc-per-node",
      "4",
      "--rdzv-backend",
      "c10d",
      "--rdzv-endpoint",
      "h:29400",
      "--rdzv-id",
      "r",
      "--max-restarts",
      "0",
      "-m",
      "questa_torch_learner",
      "--workdir",
      "/w",
      "--schemas",
      "/s",
      "--threads",
      "3",
    ]);
  });

  it("gives torchrun our environment without PET_*, the package on PYTHONPATH and one thread pool per process", () => {
    const plan = { nodes: 1, processesPerNode: 2, rendezvous: "127.0.0.1:1", rendezvousId: "r", threads: 1 };
    const env = torchrunEnvironment(
      { PET_NNODES: "2", PYTHONPATH: "/x", KEEP: "1", GONE: undefined },
      plan,
      "/pkg",
    );
    expect(env).toEqual({
      KEEP: "1",
      PYTHONPATH: "/pkg:/x",
      PYTHONUNBUFFERED: "1",
      OMP_NUM_THREADS: "1",
      OMP_WAIT_POLICY: "PASSIVE",
    });
    expect(torchrunEnvironment({ OMP_WAIT_POLICY: "ACTIVE" }, plan, "/pkg").OMP_WAIT_POLICY).toBe("ACTIVE");
  });

  it("elects the node of global rank 0 as the driver", () => {
    expect(isDriver({ rank: 0 })).toBe(true);
    expect(isDriver({ rank: 4 })).toBe(false);
  });
});
