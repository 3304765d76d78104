import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer } from "./server-process.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie waiting for its parent to reap it is gone as far as we care
  const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
  return state !== "Z";
}

async function until(check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** a "server" that starts a helper process (as vLLM starts its engine) and writes the helper's pid */
function serverWithHelper(dir: string, script: string) {
  return startServer({
    name: "fake",
    command: "sh",
    args: ["-c", `sleep 300 & echo $! > ${join(dir, "helper.pid")}; ${script}`],
    env: process.env,
    cwd: dir,
    logFile: join(dir, "server.log"),
    processGroup: true,
  });
}

describe("a server under the watchdog, in a process group of its own", () => {
  it("takes the processes it started with it when it is stopped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-server-process-"));
    dirs.push(dir);
    // the server goes on TERM; its helper, which no signal reached, goes with the group
    const server = serverWithHelper(dir, "while true; do sleep 0.1; done");
    await until(
      () => existsSync(join(dir, "helper.pid")) && readFileSync(join(dir, "helper.pid"), "utf8") !== "",
    );
    const helper = Number(readFileSync(join(dir, "helper.pid"), "utf8"));
    expect(alive(helper)).toBe(true);
    // the group: /proc/<pid>/stat's fifth field
    const group = Number(readFileSync(`/proc/${helper}/stat`, "utf8").split(") ")[1]?.split(" ")[2]);
    expect(group).toBeGreaterThan(1);
    await server.stop();
    // stopped means gone, the watchdog and every process of the group with it
    expect(() => process.kill(-group, 0)).toThrow(/ESRCH/);
  });

  it("takes them with it when it exits by itself, and says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-server-process-"));
    dirs.push(dir);
    const server = serverWithHelper(dir, "echo dying; exit 3");
    await expect(server.exited).rejects.toThrow(/fake exited early \(code 3\); log: .*\n.*dying/);
    const helper = Number(readFileSync(join(dir, "helper.pid"), "utf8"));
    await until(() => !alive(helper));
  });
});
