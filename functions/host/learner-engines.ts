/**
 * The learner's engine as spec.learner.engine names it: onnx (questa's onnxruntime learner, in this
 * process) or torch (PyTorch FSDP2 under torchrun, torch-learner/). A torch learner spans nodes: the
 * process whose Python is global rank 0 drives the Learner, the others are node agents.
 */
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import type { LearnerEngine } from "../learn/learner-engine.ts";
import { InputError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import { engineSettings } from "./function-services.ts";
import { OnnxLearnerEngine } from "./onnx-adapters.ts";
import { torchLaunchPlan } from "./torch-launch.ts";
import { TorchLearnerEngine, TorchNode, torchTrainingOptions } from "./torch-learner-engine.ts";
import { freeLoopbackPort, resolveTorchPython } from "./torch-process.ts";

export type DisposableLearnerEngine = LearnerEngine & { dispose(): Promise<void> };

export type LearnerNode =
  /** this process runs the Learner; `stopped` settles if the engine's processes end without being asked */
  | { role: "driver"; engine: DisposableLearnerEngine; stopped: Promise<Error> }
  /** a torch learner node other than rank 0's: it only moves its ranks' checkpoint files */
  | { role: "agent"; node: TorchNode };

export async function startLearnerNode(options: {
  spec: QuestATrainingSpec;
  run: string;
  env: Record<string, string | undefined>;
  /** install the torch learner's venv when it is missing (embedded runs); else fail naming the script */
  install: boolean;
  /** one-line notices for the user (the venv install) */
  say?: (message: string) => void;
  logger: Logger;
  /** the torch learner's work folder on this node; default a folder under the OS temp dir */
  workDir?: string;
}): Promise<LearnerNode> {
  const { spec, env } = options;
  const kind = spec.learner.engine;
  switch (kind) {
    case "onnx":
      return {
        role: "driver",
        engine: new OnnxLearnerEngine(engineSettings(spec)),
        stopped: new Promise<Error>(() => {}),
      };
    case "torch": {
      const plan = torchLaunchPlan({
        learner: spec.learner,
        env,
        cores: availableParallelism(),
        run: options.run,
        freePort: await freeLoopbackPort(),
      });
      if (
        plan.nodes === 1 &&
        spec.learner.torch.nodes > 1 &&
        !Object.keys(env).some((k) => k.startsWith("PET_"))
      ) {
        throw new InputError("torch_learner.nodes", [
          {
            path: "spec.learner.torch.nodes",
            message: `${spec.learner.torch.nodes} nodes need the operator (each learner pod runs torchrun); this run has one node`,
            hint: "set learner.torch.nodes to 1 here, or apply the resource to a cluster",
          },
        ]);
      }
      const python = await resolveTorchPython({
        env,
        install: options.install,
        ...(options.say ? { say: options.say } : {}),
      });
      const node = await TorchNode.start({
        python,
        plan,
        workDir: options.workDir ?? join(tmpdir(), `questa-torch-learner-${process.pid}`),
        env,
        logger: options.logger,
      });
      if (!node.isDriver) return { role: "agent", node };
      return {
        role: "driver",
        engine: new TorchLearnerEngine({ node, options: torchTrainingOptions(spec.learner) }),
        stopped: node.unexpectedExit,
      };
    }
    default: {
      const never: never = kind;
      throw new InputError("learner.engine", [
        {
          path: "spec.learner.engine",
          message: `unknown learner engine ${String(never)}`,
          hint: "use onnx or torch",
        },
      ]);
    }
  }
}
