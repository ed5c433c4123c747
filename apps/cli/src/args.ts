/**
 * Argument parsing for the `marlin` subcommands (node:util parseArgs, strict): unknown options,
 * missing values and malformed numbers are UsageErrors (exit code 2), found before any work.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "@marlin/gptq";

export { UsageError };

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  /** SIGINT / SIGTERM (wired by main.ts). */
  signal?: AbortSignal;
}

export type OptionSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

export interface Parsed {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export function parse(args: string[], options: OptionSpec): Parsed {
  try {
    const r = parseArgs({ args, options: { help: { type: "boolean", short: "h" }, ...options }, allowPositionals: true, strict: true });
    return { positionals: r.positionals, values: r.values as Parsed["values"] };
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0].replace(/\. To specify a positional.*$/, ""));
  }
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

export function num(p: Parsed, name: string, rule: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const kind = rule.integer ? "an integer" : "a number";
  if (raw.trim() === "" || !Number.isFinite(v) || (rule.integer && !Number.isSafeInteger(v))) throw new UsageError(`--${name} needs ${kind}, got "${raw}"`);
  if (rule.min !== undefined && v < rule.min) throw new UsageError(`--${name} must be >= ${rule.min}, got ${raw}`);
  if (rule.max !== undefined && v > rule.max) throw new UsageError(`--${name} must be <= ${rule.max}, got ${raw}`);
  return v;
}

export function oneOf<T extends string>(p: Parsed, name: string, allowed: readonly T[]): T | undefined {
  const v = str(p, name);
  if (v !== undefined && !allowed.includes(v as T)) throw new UsageError(`--${name} must be ${allowed.join(" | ")}, got ${v}`);
  return v as T | undefined;
}

/** The object without its undefined fields (so defaults further down apply). */
export function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Exactly `names.length` positionals. */
export function positionals(p: Parsed, names: string[]): string[] {
  if (p.positionals.length < names.length) throw new UsageError(`missing <${names[p.positionals.length]}>`);
  if (p.positionals.length > names.length) throw new UsageError(`unexpected argument ${p.positionals[names.length]}`);
  return p.positionals;
}

/** A Hugging Face-style model directory (config.json inside). */
export function modelDir(path: string): string {
  const dir = resolve(path);
  if (!existsSync(dir)) throw new UsageError(`model directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a directory`);
  if (!existsSync(join(dir, "config.json"))) throw new UsageError(`${dir} is not a model directory (no config.json)`);
  return dir;
}
