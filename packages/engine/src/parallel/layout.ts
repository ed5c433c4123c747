/**
 * How a model is split over tp ranks (Megatron / vLLM style):
 *
 * - attention heads: rank r owns q heads and kv heads [r * h / tp, (r + 1) * h / tp) (both counts
 *   must divide by tp: a TensorParallelError otherwise); q/k/v are column-parallel over those heads,
 *   o_proj row-parallel over the same q heads' features;
 * - MLP: gate/up column-parallel and down_proj row-parallel over one range of the intermediate
 *   features per rank, cut at group boundaries of a grouped quantized down_proj (ranks may then
 *   differ by a group);
 * - vocabulary: embedding and lm_head both vocabulary-parallel, ceil(V / tp) rows per rank (the last
 *   rank's tail is zero rows); the embedding is summed (all-reduce), the logits gathered (all-gather).
 */
import type { ModelConfig } from "../model/config.js";
import type { ModelSources } from "../model/weights.js";
import { TensorParallelError } from "./communicator.js";

export interface Range {
  start: number;
  end: number;
}

export interface TpLayout {
  tp: number;
  /** Per rank, in heads. */
  heads: Range[];
  kvHeads: Range[];
  /** Per rank, intermediate features. */
  inter: Range[];
  /** Per rank, vocabulary rows: [r * vocabPerRank, ...) clipped to V. */
  vocab: Range[];
  vocabPerRank: number;
}

export const MAX_TP = 64;

/** [0, total) in `parts` ranges of whole `unit`s, the first ranges one unit longer when they do not divide. */
export function splitRange(total: number, parts: number, unit = 1): Range[] {
  const units = Math.ceil(total / unit);
  if (units < parts) throw new TensorParallelError(`${total} features in units of ${unit} cannot be split over ${parts} ranks`);
  const out: Range[] = [];
  let at = 0;
  for (let r = 0; r < parts; r++) {
    const u = Math.floor(units / parts) + (r < units % parts ? 1 : 0);
    const end = Math.min(total, at + u * unit);
    out.push({ start: at, end });
    at = end;
  }
  return out;
}

/** The split unit of the intermediate features: the group size of a grouped (not act-order) quantized down_proj. */
function interUnit(src?: ModelSources): number {
  const d = src?.layers[0]?.linears.down_proj;
  if (d?.kind !== "quantized" || d.layer.gIdx || d.layer.groupSize <= 0 || d.layer.scales.length === d.layer.n) return 1;
  return d.layer.groupSize;
}

export function checkTensorParallelSize(tp: unknown): number {
  if (typeof tp !== "number" || !Number.isSafeInteger(tp) || tp < 1 || tp > MAX_TP)
    throw new TensorParallelError(`tensorParallelSize must be an integer in [1, ${MAX_TP}], got ${typeof tp === "number" ? tp : JSON.stringify(tp)}`);
  return tp;
}

/** The split of `config` over tp ranks; TensorParallelError when the heads do not divide. */
export function planLayout(config: ModelConfig, tp: number, src?: ModelSources): TpLayout {
  checkTensorParallelSize(tp);
  if (config.numHeads % tp !== 0 || config.numKvHeads % tp !== 0)
    throw new TensorParallelError(
      `tensorParallelSize ${tp} must divide num_attention_heads (${config.numHeads}) and num_key_value_heads (${config.numKvHeads}); ` +
        `sizes that fit: ${divisors(gcdOf(config.numHeads, config.numKvHeads)).join(", ")}`,
    );
  const per = (h: number) => Array.from({ length: tp }, (_, r) => ({ start: (r * h) / tp, end: ((r + 1) * h) / tp }));
  const V = config.vocabSize;
  const vocabPerRank = Math.ceil(V / tp);
  return {
    tp,
    heads: per(config.numHeads),
    kvHeads: per(config.numKvHeads),
    inter: splitRange(config.intermediateSize, tp, interUnit(src)),
    vocab: Array.from({ length: tp }, (_, r) => ({ start: Math.min(V, r * vocabPerRank), end: Math.min(V, (r + 1) * vocabPerRank) })),
    vocabPerRank,
  };
}

/** A rank's view of the config: its heads and intermediate features (hidden size and vocabulary stay whole). */
export function rankConfig(config: ModelConfig, layout: TpLayout, rank: number): ModelConfig {
  const len = (r: Range) => r.end - r.start;
  return { ...config, numHeads: len(layout.heads[rank]), numKvHeads: len(layout.kvHeads[rank]), intermediateSize: len(layout.inter[rank]) };
}

function gcdOf(a: number, b: number): number {
  return b ? gcdOf(b, a % b) : a;
}
function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}
