import { z } from "zod";
import type { EventDefinition, EmittedEvent } from "./functions/runtime/event-definition.ts";
const d: EventDefinition<{ a: number }> = { type: "x", topic: "t", data: z.object({ a: z.number() }), description: "" };
const u: EventDefinition<unknown> = d;
const e: EmittedEvent<{ a: number }> = { definition: d, data: { a: 1 }, key: "k" };
const eu: EmittedEvent<unknown> = e;
const arr: readonly EmittedEvent<unknown>[] = [e];
console.log(u, eu, arr);
