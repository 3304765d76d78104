import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { validateYaml } from "../functions/contracts/validate.ts";
import { formatInputIssue } from "../functions/runtime/errors.ts";
import type { CommandRun } from "./io.ts";

/** `questa validate FILE...`: exit 0 when every document of every file is valid. */
export const runValidate: CommandRun = async (args, io) => {
  if (args.length === 0 || args.includes("--help")) {
    io.stderr("usage: questa validate FILE...\n");
    return 2;
  }
  let invalid = 0;
  for (const file of args) {
    let text: string;
    try {
      text = await readFile(resolve(io.cwd, file), "utf8");
    } catch (error) {
      io.stderr(`${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}\n`);
      invalid++;
      continue;
    }
    const documents = validateYaml(text);
    for (const { index, line, result } of documents) {
      const where = documents.length === 1 ? file : `${file} (document ${index + 1}, line ${line})`;
      if (result.ok) {
        io.stdout(`${where}: valid QuestATraining ${result.value.metadata.name}\n`);
      } else {
        invalid++;
        io.stderr(`${where}: ${result.issues.length} error${result.issues.length === 1 ? "" : "s"}\n`);
        for (const issue of result.issues) io.stderr(`  ${formatInputIssue(issue)}\n`);
      }
    }
  }
  return invalid === 0 ? 0 : 1;
};
