/** The CPU model runner: CpuLlama over a CpuKvCache, sampling with the C++ sampler. */
import type { ModelRunner, PagedRows, StepBatch } from "../core/runner.js";
import type { ModelConfig } from "../model/config.js";
import { CpuKvCache, type CpuLlama } from "./cpu-model.js";
import { cpuOps } from "./ops.js";

export class CpuModelRunner implements ModelRunner {
  readonly device = "cpu" as const;
  readonly config: ModelConfig;
  readonly model: CpuLlama;
  readonly cache: CpuKvCache;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly maxModelLen: number;

  constructor(model: CpuLlama, numBlocks: number, blockSize: number) {
    this.model = model;
    this.config = model.config;
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.maxModelLen = model.maxPositions;
    this.cache = new CpuKvCache(model.config, model.layers.length, numBlocks, blockSize);
  }

  execute(batch: StepBatch): Int32Array {
    const out = new Int32Array(batch.sampleRows.length);
    if (batch.tokens.length === 0) return out;
    const logits = this.model.forward(batch, this.cache, batch.sampleRows);
    if (out.length === 0) return out;
    const s = batch.sampling;
    cpuOps().sample(logits, out.length, this.config.vocabSize, s.temperature, s.topK, s.topP, s.seeds, s.counters, out);
    return out;
  }

  score(rows: PagedRows, logitRows: Int32Array, targets: Int32Array): Float64Array {
    const logits = this.model.forward(rows, this.cache, logitRows);
    const out = new Float64Array(logitRows.length);
    cpuOps().logprobs(logits, logitRows.length, this.config.vocabSize, targets, out);
    return out;
  }

  dispose(): void {}
}
