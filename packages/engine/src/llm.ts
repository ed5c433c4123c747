/**
 * The offline API: load a model directory, then generate for many prompts at once.
 *
 *   const llm = await LLM.load("models/tiny-llama", { device: "cpu" });
 *   const [r] = await llm.generate(["Once upon a time"], { maxTokens: 32 });
 */
import { InvalidArgumentError, NoDeviceError } from "@marlin/core";
import { openCheckpoint } from "@marlin/format";
import { hasGpu, memInfo, noGpuReason } from "@marlin/kernel";
import { type EngineOptions, LLMEngine, type OutputCallback } from "./core/engine.js";
import type { RequestMetrics, RequestOutput } from "./core/outputs.js";
import type { ModelRunner } from "./core/runner.js";
import type { SamplingParams } from "./core/sampling-params.js";
import type { FinishReason } from "./core/sequence.js";
import { CpuLlama } from "./cpu/cpu-model.js";
import { CpuModelRunner } from "./cpu/cpu-runner.js";
import { type CachePlan, planCache } from "./load-options.js";
import { type GenerationDefaults, loadGenerationDefaults, loadModelConfig, type ModelConfig } from "./model/config.js";
import { Tokenizer } from "./model/tokenizer.js";
import { loadModelSources, type ModelSources } from "./model/weights.js";
import { checkTensorParallel } from "./parallel/check.js";
import { CpuTpRunner } from "./parallel/cpu-tp-runner.js";

export type Device = "auto" | "cpu" | "cuda";

/**
 * Load options; checked (InvalidArgumentError) before any weight is read. The model length is
 * max_position_embeddings bounded by what the KV cache holds (numBlocks * blockSize), so the
 * RoPE tables and block tables never grow with what a config claims; a KV cache larger than the
 * machine's memory is refused.
 */
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
  /**
   * Ranks the model is split over (default 1): CPU ranks are worker threads meeting in shared
   * memory; CUDA needs one GPU per rank (see src/parallel/README.md). Must divide the heads.
   */
  tensorParallelSize?: number;
  /** tp > 1: modules each rank's worker imports first (implementations and weight kinds registered here). */
  tensorParallelImports?: string[];
  /**
   * CUDA tp > 1: the device of each rank (default 0..tp-1). Ranks sharing a device use the
   * host-staged communicator (no NCCL, no CUDA graphs; slow, for checking the sharded runner on one GPU).
   */
  tensorParallelDevices?: number[];
  /** CUDA tp > 1: "nccl" (default when every rank has a GPU of its own) or "host" (staged through host memory). */
  tensorParallelCommunicator?: "nccl" | "host";
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

/** Checks the options against the model and this machine (before any weight is read) and plans the cache. */
export function planLoad(config: ModelConfig, opts: LoadOptions = {}): CachePlan {
  const want = (opts as LoadOptions | null)?.device ?? "auto";
  if (want === "cuda" && !hasGpu()) throw new NoDeviceError(`device "cuda" needs a CUDA device: ${noGpuReason() ?? "none was found"}`);
  const device = want === "cuda" || (want === "auto" && hasGpu()) ? "cuda" : "cpu";
  const plan = planCache(config, opts, device, device === "cuda" ? memInfo(0) : undefined);
  checkTensorParallel(config, opts.tensorParallelSize ?? 1, device, { devices: opts.tensorParallelDevices, communicator: opts.tensorParallelCommunicator });
  return plan;
}

async function makeRunner(m: LoadedModel, opts: LoadOptions, plan: CachePlan): Promise<ModelRunner> {
  const { blockSize, maxModelLen } = plan;
  const tp = opts.tensorParallelSize ?? 1;
  if (plan.device === "cuda") {
    const gpuOpts = {
      ...opts,
      blockSize,
      maxModelLen,
      ...(plan.numBlocks !== undefined ? { numBlocks: plan.numBlocks } : {}),
      maxNumBatchedTokens: opts.maxNumBatchedTokens ?? 2048,
    };
    if (tp > 1) {
      const place = checkTensorParallel(m.config, tp, "cuda", { devices: opts.tensorParallelDevices, communicator: opts.tensorParallelCommunicator });
      const { GpuTpRunner } = await import("./parallel/gpu-tp-runner.js");
      const { tensorParallelDevices: _d, tensorParallelCommunicator: _c, tensorParallelImports, ...rest } = gpuOpts;
      return GpuTpRunner.create(m.config, m.sources, { ...rest, tensorParallelSize: tp, devices: place?.devices, communicator: place?.communicator, imports: tensorParallelImports });
    }
    const { GpuModelRunner } = await import("./gpu/gpu-runner.js");
    return GpuModelRunner.create(m.config, m.sources, gpuOpts);
  }
  if (tp > 1) return CpuTpRunner.create(m.config, m.sources, { tensorParallelSize: tp, numBlocks: plan.numBlocks!, blockSize, maxModelLen, imports: opts.tensorParallelImports });
  return new CpuModelRunner(new CpuLlama(m.config, m.sources, maxModelLen), plan.numBlocks!, blockSize);
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
    if (typeof dir !== "string" || dir === "") throw new InvalidArgumentError("LLM.load needs a model directory path");
    planLoad(loadModelConfig(dir), opts); // refuses bad options before the weights are read
    const m = await loadModelDir(dir);
    return LLM.fromLoaded(m, opts);
  }

  static async fromLoaded(m: LoadedModel, opts: LoadOptions = {}): Promise<LLM> {
    const plan = planLoad(m.config, opts);
    const runner = await makeRunner(m, opts, plan);
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
    // Each prompt and params object is checked by the engine (InvalidArgumentError, before any work).
    if (!Array.isArray(list)) throw new InvalidArgumentError(`prompts must be a string or an array, got ${list === null ? "null" : typeof list}`);
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
