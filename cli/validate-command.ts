import { resolve } from "node:path";
import { readResourceFile } from "../functions/contracts/resource-file.ts";
import { RESOURCE_LIMITS } from "../functions/contracts/validate.ts";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import { parseArgs } from "./args.ts";
import { type CommandDefinition, limitLines, MAX_PRINTED_ISSUES } from "./io.ts";

const HELP = `usage: questa validate FILE...

Checks QuestATraining files (every document of each): prints "FILE: valid QuestATraining NAME"
on stdout, or each problem with its field path (or YAML line and column) and how to fix it on
stderr, at most ${MAX_PRINTED_ISSUES} per document ("... and N more").
Bounds: a file of at most ${RESOURCE_LIMITS.maxBytes / 1024} KiB of UTF-8 text, ${RESOURCE_LIMITS.maxDocuments} documents,
${RESOURCE_LIMITS.maxAliases} aliases and ${RESOURCE_LIMITS.maxDepth} levels of nesting per document.
Exit codes: 0 every document is valid, 1 some file or document is not, 2 usage.
`;

/** `questa validate FILE...`: exit 0 when every document of every file is valid. */
export const validateCommand: CommandDefinition = {
  help: HELP,
  run: async (args, io) => {
    const { positionals: files } = parseArgs(args, {
      positionals: { min: 1, max: Number.POSITIVE_INFINITY, what: "one or more files" },
    });
    let invalid = 0;
    for (const file of files) {
      let documents: Awaited<ReturnType<typeof readResourceFile>>;
      try {
        documents = await readResourceFile(resolve(io.cwd, file), file);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        for (const issue of error.issues) io.stderr(`${formatInputIssue(issue)}\n`);
        invalid++;
        continue; // the other files are still checked
      }
      for (const { index, line, result } of documents) {
        const where = documents.length === 1 ? file : `${file} (document ${index + 1}, line ${line})`;
        if (result.ok) {
          io.stdout(`${where}: valid QuestATraining ${result.value.metadata.name}\n`);
        } else {
          invalid++;
          io.stderr(`${where}: ${result.issues.length} error${result.issues.length === 1 ? "" : "s"}\n`);
          for (const text of limitLines(result.issues.map(formatInputIssue))) io.stderr(`  ${text}\n`);
        }
      }
    }
    return invalid === 0 ? 0 : 1;
  },
};
