/**
 * The offline API: load a model directory, then generate for many prompts at once.
 *
 *   const llm = await LLM.load("models/tiny-llama", { device: "cpu" });
 *   const [r] = await llm.generate(["Once upon a time"], { maxTokens: 32 });
 */
import { InvalidArgumentError } from "@marlin/core";
import { openCheckpoint } from "@marlin/format";
import { hasGpu } from "@marlin/kernel";
import { type EngineOptions, LLMEngine, type OutputCallback } from "./core/engine.js";
import type { RequestMetrics, RequestOutput } from "./core/outputs.js";
import type { ModelRunner } from "./core/runner.js";
import type { SamplingParams } from "./core/sampling-params.js";
import type { FinishReason } from "./core/sequence.js";
import { CpuLlama } from "./cpu/cpu-model.js";
import { CpuModelRunner } from "./cpu/cpu-runner.js";
import { type GenerationDefaults, loadGenerationDefaults, loadModelConfig, type ModelConfig } from "./model/config.js";
import { Tokenizer } from "./model/tokenizer.js";
import { loadModelSources, type ModelSources } from "./model/weights.js";

export type Device = "auto" | "cpu" | "cuda";

export interface LoadOptions extends EngineOptions {
  device?: Device;
  /** KV cache size in blocks (default: from kvCacheTokens). */
  numBlocks?: number;
  /** KV cache size in tokens when numBlocks is not given (CPU default 32768; GPU: from gpuMemoryFraction). */
  kvCacheTokens?: number;
  /** GPU: fraction of free device memory the KV cache may take after weights (default 0.8). */
  gpuMemoryFraction?: number;
  /** GPU: capture decode steps in CUDA graphs (default true). */
  cudaGraphs?: boolean;
}

export interface GenerateResult {
  requestId: string;
  prompt?: string;
  promptTokenIds: number[];
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  stopReason?: string | number;
  numCachedTokens: number;
  metrics: RequestMetrics;
}

export interface LoadedModel {
  config: ModelConfig;
  defaults: GenerationDefaults;
  tokenizer: Tokenizer | undefined;
  sources: ModelSources;
}

/** Reads config, generation config, tokenizer and weights of a model directory. */
export async function loadModelDir(dir: string): Promise<LoadedModel> {
  const config = loadModelConfig(dir);
  const defaults = loadGenerationDefaults(dir, config);
  let tokenizer: Tokenizer | undefined;
  try {
    tokenizer = await Tokenizer.fromDir(dir);
  } catch (e) {
    if ((e as { code?: string }).code !== "ERR_MARLIN_FORMAT" || !String((e as Error).message).includes("not found")) throw e;
  }
  const ckpt = await openCheckpoint(dir);
  try {
    const sources = await loadModelSources(ckpt, config);
    return { config, defaults, tokenizer, sources };
  } finally {
    await ckpt.close();
  }
}

async function makeRunner(m: LoadedModel, opts: LoadOptions): Promise<ModelRunner> {
  const device = opts.device ?? "auto";
  const blockSize = opts.blockSize ?? 16;
  const maxLen = Math.min(opts.maxModelLen ?? m.config.maxPositionEmbeddings, m.config.maxPositionEmbeddings);
  if (device === "cuda" || (device === "auto" && hasGpu())) {
    const { GpuModelRunner } = await import("./gpu/gpu-runner.js");
    return GpuModelRunner.create(m.config, m.sources, {
      ...opts,
      blockSize,
      maxModelLen: maxLen,
      maxNumBatchedTokens: opts.maxNumBatchedTokens ?? 2048,
    });
  }
  if (device !== "cpu" && device !== "auto") throw new InvalidArgumentError(`unknown device ${device}`);
  const tokens = opts.kvCacheTokens ?? Math.min(32768, (opts.maxNumSeqs ?? 64) * maxLen);
  const numBlocks = opts.numBlocks ?? Math.max(1, Math.ceil(tokens / blockSize));
  return new CpuModelRunner(new CpuLlama(m.config, m.sources, maxLen), numBlocks, blockSize);
}

export class LLM {
  readonly engine: LLMEngine;
  readonly tokenizer: Tokenizer | undefined;
  readonly config: ModelConfig;

  constructor(engine: LLMEngine) {
    this.engine = engine;
    this.tokenizer = engine.tokenizer;
    this.config = engine.runner.config;
  }

  static async load(dir: string, opts: LoadOptions = {}): Promise<LLM> {
    const m = await loadModelDir(dir);
    return LLM.fromLoaded(m, opts);
  }

  static async fromLoaded(m: LoadedModel, opts: LoadOptions = {}): Promise<LLM> {
    const runner = await makeRunner(m, opts);
    return new LLM(new LLMEngine(runner, m.tokenizer, m.defaults, opts));
  }

  get device(): "cpu" | "cuda" {
    return this.engine.runner.device;
  }

  /**
   * Generates for every prompt (text or token ids) at once; results in prompt order. `params` may be
   * one set for all or one per prompt. `onOutput` streams every request's per-token outputs.
   */
  async generate(
    prompts: string | (string | number[])[],
    params: SamplingParams | SamplingParams[] = {},
    opts: { onOutput?: OutputCallback } = {},
  ): Promise<GenerateResult[]> {
    const list = typeof prompts === "string" ? [prompts] : prompts;
    if (Array.isArray(params) && params.length !== list.length)
      throw new InvalidArgumentError(`${params.length} sampling params for ${list.length} prompts`);
    const finals = new Map<string, RequestOutput>();
    const ids: string[] = [];
    try {
      for (let i = 0; i < list.length; i++) {
        const p = Array.isArray(params) ? params[i] : params;
        ids.push(
          await this.engine.addRequest(list[i], p, {
            onOutput: (o) => {
              if (o.finished) finals.set(o.requestId, o);
              opts.onOutput?.(o);
            },
          }),
        );
      }
      while (finals.size < ids.length && this.engine.hasUnfinished) await this.engine.step();
    } catch (e) {
      for (const id of ids) this.engine.abort(id);
      throw e;
    }
    return ids.map((id, i) => {
      const o = finals.get(id)!;
      const prompt = list[i];
      return {
        requestId: id,
        ...(typeof prompt === "string" ? { prompt } : {}),
        promptTokenIds: o.promptTokenIds,
        text: o.text,
        tokenIds: o.tokenIds,
        finishReason: o.finishReason!,
        stopReason: o.stopReason,
        numCachedTokens: o.numCachedTokens,
        metrics: o.metrics,
      };
    });
  }

  dispose(): void {
    this.engine.runner.dispose();
  }
}
