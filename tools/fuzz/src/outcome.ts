/** How a case ended, and the counts a run reports. */
import { MarlinError } from "@marlin/core";

export type Outcome = "typed" | "untyped" | "crash" | "hang" | "accept";
export const OUTCOMES: readonly Outcome[] = ["typed", "untyped", "crash", "hang", "accept"];

export type Counts = Record<Outcome, number> & { cases: number };

export function emptyCounts(): Counts {
  return { cases: 0, typed: 0, untyped: 0, crash: 0, hang: 0, accept: 0 };
}

/** A refusal is typed when it is a MarlinError (a class of @marlin/core, with a stable code). */
export function classify(e: unknown): "typed" | "untyped" {
  return e instanceof MarlinError ? "typed" : "untyped";
}

/** One line about an error: its class, code and the start of its message. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `non-error thrown: ${String(e).slice(0, 200)}`;
  const code = (e as { code?: unknown }).code;
  return `${e.name}${code ? ` [${String(code)}]` : ""}: ${e.message.slice(0, 300)}`;
}

/** The seed of case `index` of `target` in a run of `seed` (so each case replays alone). */
export function caseSeed(seed: number, target: string, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < target.length; i++) h = Math.imul(h ^ target.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ index, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
