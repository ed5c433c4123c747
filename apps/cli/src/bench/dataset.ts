/**
 * The benchmark's synthetic workload: prompts of random token ids (seeded), sent as token-id
 * prompts so their lengths are exact whatever the tokenizer, and Poisson arrival times.
 *   random: input and output lengths uniform in [len * (1 - r), len * (1 + r)]
 *   fixed:  every prompt exactly input-len tokens, every output exactly output-len (ignore_eos)
 */
import { InvalidArgumentError, Rng } from "@marlin/core";

export type DatasetKind = "random" | "fixed";

export interface DatasetOptions {
  kind: DatasetKind;
  numPrompts: number;
  inputLen: number;
  outputLen: number;
  /** Spread of the random lengths (0.25 by default; fixed forces 0). */
  rangeRatio?: number;
  /** Token ids are drawn from the middle 90% of [0, vocabSize), away from special tokens at either end. */
  vocabSize: number;
  seed: number;
}

export interface BenchRequest {
  promptIds: number[];
  outputLen: number;
}

export function makeDataset(o: DatasetOptions): BenchRequest[] {
  const r = o.kind === "fixed" ? 0 : (o.rangeRatio ?? 0.25);
  if (!(r >= 0 && r < 1)) throw new InvalidArgumentError(`range ratio must be in [0, 1), got ${r}`);
  if (!(o.vocabSize >= 20)) throw new InvalidArgumentError(`vocabulary of ${o.vocabSize} ids is too small for random prompts`);
  const rng = new Rng(o.seed);
  const lo = Math.floor(o.vocabSize * 0.05);
  const hi = Math.ceil(o.vocabSize * 0.95);
  const len = (mean: number) => Math.max(1, r === 0 ? mean : rng.int(Math.floor(mean * (1 - r)), Math.floor(mean * (1 + r)) + 1));
  return Array.from({ length: o.numPrompts }, () => {
    const n = len(o.inputLen);
    return { promptIds: Array.from({ length: n }, () => rng.int(lo, hi)), outputLen: len(o.outputLen) };
  });
}

/** Seconds between arrivals: exponential with mean 1 / rate (a Poisson process); all 0 for rate Infinity. */
export function poissonGaps(n: number, rate: number, seed: number): number[] {
  if (!(rate > 0)) throw new InvalidArgumentError(`request rate must be > 0 (or inf), got ${rate}`);
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => (i === 0 || !Number.isFinite(rate) ? 0 : -Math.log(1 - rng.next()) / rate));
}
