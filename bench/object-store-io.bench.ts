import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";

/**
 * The local object store under a busy event loop, as in an embedded run: sampling holds the main
 * thread in synchronous onnxruntime runs of ~100 ms with one event-loop turn between them, while
 * the learner writes a checkpoint. Measures FsObjectStore put/get of one object and, in the same
 * run, Node's fs writeFile/readFile of the same bytes (the 512 KiB-per-turn way).
 * Prints one JSON document. QUESTA_BENCH_MB (default 64), QUESTA_BENCH_BUSY_MS (default 100).
 */

const megabytes = Number(process.env.QUESTA_BENCH_MB ?? 64);
const busyMs = Number(process.env.QUESTA_BENCH_BUSY_MS ?? 100);

/** keeps the main thread busy `busyMs` at a time, yielding one event-loop turn in between */
function occupyLoop(): () => void {
  let running = true;
  const slice = () => {
    if (!running) return;
    const end = performance.now() + busyMs;
    while (performance.now() < end) {
      // a synchronous run holds the thread
    }
    setImmediate(slice);
  };
  setImmediate(slice);
  return () => {
    running = false;
  };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

const dir = await mkdtemp(join(tmpdir(), "questa-io-bench-"));
try {
  const bytes = new Uint8Array(megabytes * 1024 * 1024).fill(7);
  const store = new FsObjectStore(join(dir, "store"));
  const plain = join(dir, "plain.bin");
  const stop = occupyLoop();
  const ms = {
    fsWriteFile: await timed(() => writeFile(plain, bytes)),
    storePut: await timed(() => store.put("object.bin", bytes)),
    fsReadFile: await timed(() => readFile(plain)),
    storeGet: await timed(() => store.get("object.bin")),
  };
  stop();
  const rate = (milliseconds: number) => Math.round((megabytes / milliseconds) * 1000 * 10) / 10;
  console.log(
    JSON.stringify(
      {
        megabytes,
        busyMs,
        mbPerSecond: {
          storePut: rate(ms.storePut),
          fsWriteFile: rate(ms.fsWriteFile),
          storeGet: rate(ms.storeGet),
          fsReadFile: rate(ms.fsReadFile),
        },
        milliseconds: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.round(v)])),
      },
      null,
      2,
    ),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
