import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** a process of this machine as /proc shows it */
export interface LivingProcess {
  pid: number;
  /** its command line, arguments joined by NUL as /proc has them */
  cmdline: string;
  /** its working directory; undefined when not ours to read */
  cwd: string | undefined;
}

/**
 * The machine's processes that are neither gone nor zombies, for tests that check what a run
 * leaves behind (torchrun and its workers, a vLLM server and its engine processes).
 */
export function livingProcesses(): LivingProcess[] {
  const found: LivingProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (state === "Z") continue;
      let cwd: string | undefined;
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        cwd = undefined;
      }
      found.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, "utf8"), cwd });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
