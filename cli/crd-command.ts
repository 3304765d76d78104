import { stringify } from "yaml";
import { questaTrainingCrd } from "../functions/contracts/crd.ts";
import { parseArgs } from "./args.ts";
import type { CommandDefinition } from "./io.ts";

const HELP = `usage: questa crd [--json]

Prints the QuestATraining CustomResourceDefinition as YAML (--json: as JSON), e.g.
  questa crd | kubectl apply -f -
`;

/** `questa crd [--json]`: prints the CustomResourceDefinition (`questa crd | kubectl apply -f -`). */
export const crdCommand: CommandDefinition = {
  help: HELP,
  run: async (args, io) => {
    const parsed = parseArgs(args, { booleans: ["json"], positionals: { min: 0, max: 0, what: "nothing" } });
    const crd = questaTrainingCrd();
    io.stdout(
      parsed.options.has("json")
        ? `${JSON.stringify(crd, null, 2)}\n`
        : stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false }),
    );
    return 0;
  },
};
