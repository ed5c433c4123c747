/** Per-request sampling parameters, validated once when a request is added. */
import { InvalidArgumentError } from "@marlin/core";

export interface SamplingParams {
  /** 0 = greedy (the default). */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP?: number;
  /** Keep the k most likely tokens; 0 or -1 = off. */
  topK?: number;
  /** Makes a sampled request reproducible, whatever batch it runs in. */
  seed?: number;
  /** Most tokens to generate (default 16). */
  maxTokens?: number;
  /** Generation stops when the text contains one of these (it is cut before the match). */
  stop?: string[];
  /** Generation stops at any of these ids (the id is kept in the output). */
  stopTokenIds?: number[];
  /** Keep generating past EOS. */
  ignoreEos?: boolean;
  /** Keep the matched stop string in the text. */
  includeStopStrInOutput?: boolean;
  /** Decode without special tokens (default true). */
  skipSpecialTokens?: boolean;
}

export interface ResolvedSamplingParams {
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  maxTokens: number;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  includeStopStrInOutput: boolean;
  skipSpecialTokens: boolean;
}

function num(v: unknown, name: string, ok: (x: number) => boolean, rule: string): number {
  if (typeof v !== "number" || !ok(v)) throw new InvalidArgumentError(`${name} ${rule}, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveSamplingParams(p: SamplingParams = {}): ResolvedSamplingParams {
  if (typeof p !== "object" || p === null || Array.isArray(p))
    throw new InvalidArgumentError(`sampling params must be an object, got ${p === null ? "null" : Array.isArray(p) ? "an array" : typeof p}`);
  const temperature = num(p.temperature ?? 0, "temperature", (x) => Number.isFinite(x) && x >= 0, "must be >= 0");
  const topP = num(p.topP ?? 1, "topP", (x) => x > 0 && x <= 1, "must be in (0, 1]");
  const topK = num(p.topK ?? 0, "topK", (x) => Number.isInteger(x) && x >= -1, "must be an integer >= -1");
  const maxTokens = num(p.maxTokens ?? 16, "maxTokens", (x) => Number.isInteger(x) && x >= 1, "must be a positive integer");
  if (p.seed !== undefined) num(p.seed, "seed", (x) => Number.isSafeInteger(x) && x >= 0, "must be a non-negative safe integer");
  const stop = p.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s.length === 0))
    throw new InvalidArgumentError("stop must be an array of non-empty strings");
  const stopTokenIds = p.stopTokenIds ?? [];
  if (!Array.isArray(stopTokenIds) || stopTokenIds.some((s) => !Number.isInteger(s) || s < 0))
    throw new InvalidArgumentError("stopTokenIds must be an array of token ids");
  return {
    temperature,
    topP,
    topK: topK === -1 ? 0 : topK,
    seed: p.seed,
    maxTokens,
    stop: [...stop],
    stopTokenIds: [...stopTokenIds],
    ignoreEos: p.ignoreEos === true,
    includeStopStrInOutput: p.includeStopStrInOutput === true,
    skipSpecialTokens: p.skipSpecialTokens !== false,
  };
}
