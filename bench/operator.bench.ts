import { cpus, totalmem } from "node:os";
import { systemClock } from "../functions/runtime/clock.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { artifactStores } from "../operator/main.ts";
import { MemoryKubeApi } from "../operator/memory-kube-api.ts";
import { OperatorMetrics } from "../operator/metrics.ts";
import {
  DEPLOYMENT,
  QUESTA_TRAINING,
  QuestATrainingController,
} from "../operator/questatraining-controller.ts";
import { MemoryTopicAdmin } from "../operator/topic-admin.ts";
import { startSilentEndpoint } from "../test/infra/tls-endpoints.ts";

/**
 * Operator isolation benchmark: how long a healthy run takes from creation to its workloads and a
 * Pending status, with the operator's 2 workers, (a) alone and (b) while two other runs are being
 * deleted with `questa.dev/delete-artifacts` and their object stores never answer (real sockets
 * that accept and stay silent; the operator's real S3 client with its production timeouts). Before
 * issue #25 such calls ran on the workers with no timeout, so (b) never finished. Prints one JSON
 * document; numbers are medians and maxima over `repeats` runs.
 */

const repeats = Number(process.env.QUESTA_BENCH_REPEATS ?? 20);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

const spec = (storage?: Record<string, unknown>) => ({
  datasets: { train: [{ name: "hard", synthetic: { count: 8 } }] },
  ...(storage ? { storage } : {}),
});

async function until(probe: () => Promise<boolean>): Promise<void> {
  while (!(await probe())) await new Promise((r) => setTimeout(r, 1));
}

async function measure(hanging: number): Promise<{ ms: number[]; stillHanging: number }> {
  const silents = await Promise.all(Array.from({ length: hanging }, () => startSilentEndpoint()));
  const api = new MemoryKubeApi({ statusSubresource: [QUESTA_TRAINING] });
  const bus = new MemoryBus();
  const topics = new MemoryTopicAdmin();
  const controller = new QuestATrainingController(
    {
      api,
      kafkaFor: () => ({ bus, topics, lag: { lag: async () => 0 } }),
      artifactsFor: artifactStores(
        silents.map((s, i) => ({ bucket: `hung-${i}`, endpoint: s.url })),
        { credentials: { accessKeyId: "bench", secretAccessKey: "bench" } },
      ),
      clock: systemClock,
      metrics: new OperatorMetrics(),
      log: silentLogger(),
    },
    { defaultImage: "questa:bench", defaultKafkaBrokers: ["kafka:9092"], instance: "bench", workers: 2 },
  );
  await controller.start();
  for (const [i, silent] of silents.entries()) {
    await api.create(QUESTA_TRAINING, {
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: {
        name: `hung-${i}`,
        namespace: "slow",
        annotations: { "questa.dev/delete-artifacts": "true" },
      },
      spec: spec({ bucket: `hung-${i}`, endpoint: silent.url, forcePathStyle: true }),
    });
    await until(async () => (await api.get(DEPLOYMENT, `hung-${i}-learn`, "slow")) !== undefined);
    await api.delete(QUESTA_TRAINING, `hung-${i}`, "slow");
  }
  await until(async () => silents.every((s) => s.open() > 0));
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const name = `healthy-${r}`;
    const started = performance.now();
    await api.create(QUESTA_TRAINING, {
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: { name, namespace: "ok" },
      spec: spec(),
    });
    await until(async () => {
      const status = (await api.get(QUESTA_TRAINING, name, "ok"))?.status as { phase?: string } | undefined;
      return status?.phase === "Pending" && (await api.get(DEPLOYMENT, `${name}-learn`, "ok")) !== undefined;
    });
    ms.push(performance.now() - started);
  }
  const stillHanging = silents.filter((s) => s.open() > 0).length;
  await controller.stop();
  await Promise.all(silents.map((s) => s.close()));
  return { ms, stillHanging };
}

const alone = await measure(0);
const withHung = await measure(2);
const summary = (ms: number[]) => ({
  medianMs: Math.round(median(ms) * 10) / 10,
  maxMs: Math.round(Math.max(...ms) * 10) / 10,
});
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "operator isolation: healthy run created -> workloads applied and status Pending",
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      workers: 2,
      repeats,
      alone: summary(alone.ms),
      whileTwoRunsObjectStoresHang: {
        ...summary(withHung.ms),
        callsStillHangingAtEnd: withHung.stillHanging,
      },
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
