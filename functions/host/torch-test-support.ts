/**
 * What the tests of the torch learner's process handling share: a stand-in for torchrun (a shell
 * script given as the learner's Python) that speaks the protocol's first steps without PyTorch.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TorchReady } from "../contracts/torch-learner-protocol.ts";

const READY: TorchReady = {
  type: "ready",
  rank: 0,
  node: 0,
  nodes: 1,
  worldSize: 2,
  device: "cpu",
  backend: "gloo",
  threads: 1,
};

/**
 * Writes `dir/torchrun-stand-in`: it says it is ready, answers `load` requests, and at the first
 * request of type `dieAt` writes a traceback (its last line `RuntimeError: rank 1 ran out of memory
 * at <dieAt>`) to stderr and exits 1, as torchrun does when a rank fails. Returns its path.
 */
export function writeStandInTorchrun(dir: string, dieAt: string): string {
  const path = join(dir, "torchrun-stand-in");
  writeFileSync(
    path,
    `#!/bin/sh
echo '${JSON.stringify(READY)}'
while read -r request; do
  id=$(printf '%s' "$request" | sed -n 's/.*"id":\\([0-9]*\\).*/\\1/p')
  case "$request" in
    *'"type":"${dieAt}"'*)
      echo 'Traceback (most recent call last):' >&2
      echo 'RuntimeError: rank 1 ran out of memory at ${dieAt}' >&2
      exit 1 ;;
    *'"type":"load"'*) echo "{\\"type\\":\\"loaded\\",\\"id\\":$id,\\"optimizerStep\\":0}" ;;
  esac
done
`,
  );
  chmodSync(path, 0o755);
  return path;
}
