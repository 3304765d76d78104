import { stringify } from "yaml";
import { questaTrainingCrd } from "../functions/contracts/crd.ts";
import type { CommandRun } from "./io.ts";

/** `questa crd [--json]`: prints the CustomResourceDefinition (`questa crd | kubectl apply -f -`). */
export const runCrd: CommandRun = async (args, io) => {
  const unknown = args.filter((a) => a !== "--json");
  if (unknown.length > 0) {
    io.stderr(`questa crd: unexpected ${unknown.join(" ")}\nusage: questa crd [--json]\n`);
    return 2;
  }
  const crd = questaTrainingCrd();
  io.stdout(
    args.includes("--json")
      ? `${JSON.stringify(crd, null, 2)}\n`
      : stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false }),
  );
  return 0;
};
