/** What the engine needs from a device backend: one forward pass over a scheduled batch. */
import type { ModelConfig } from "../model/config.js";

/** Where each row of a step reads and writes the paged cache. */
export interface PagedRows {
  tokens: Int32Array;
  positions: Int32Array;
  /** Cache slot of each row's k/v (block * blockSize + offset). */
  slots: Int32Array;
  seqOfRow: Int32Array;
  /** [numSeqs, maxBlocks] */
  blockTables: Int32Array;
  maxBlocks: number;
}

export interface SamplingArrays {
  temperature: Float32Array;
  topK: Int32Array;
  topP: Float32Array;
  /** [rows, 2] 64-bit seeds, low word first. */
  seeds: Uint32Array;
  /** Index of the token being drawn (the request's output length). */
  counters: Int32Array;
}

export interface StepBatch extends PagedRows {
  /** The rows whose logits are sampled, one per sampled sequence. */
  sampleRows: Int32Array;
  sampling: SamplingArrays;
}

export interface ModelRunner {
  readonly device: "cpu" | "cuda";
  readonly config: ModelConfig;
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Longest sequence the runner takes (positions table size). */
  readonly maxModelLen: number;
  /** Most rows one forward pass takes (undefined: no limit). */
  readonly maxBatchRows?: number;
  /** Runs the batch and returns one sampled token per entry of sampleRows. */
  execute(batch: StepBatch): Int32Array;
  /** log p(targets[i] | row logitRows[i]) for perplexity. */
  score(rows: PagedRows, logitRows: Int32Array, targets: Int32Array): Float64Array;
  dispose(): void;
}
