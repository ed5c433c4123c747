/**
 * Tensor parallelism on the CPU: rank 0 runs in the engine's thread, ranks 1..tp-1 in worker
 * threads, all meeting in the shared-memory communicator. The scheduler runs on rank 0 only; each
 * step rank 0 posts the step's batch (token ids, positions, cache slots, block tables) to every
 * worker, then runs its own shard; rank 0 samples from the gathered logits (identical everywhere).
 * execute() stays synchronous: rank 0 blocks in Atomics.wait inside the collectives.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ModelRunner, PagedRows, StepBatch } from "../core/runner.js";
import { CpuKvCache, type CpuLlama } from "../cpu/cpu-model.js";
import { cpuOps } from "../cpu/ops.js";
import type { ModelConfig } from "../model/config.js";
import type { ModelSources } from "../model/weights.js";
import { CommunicatorError } from "./communicator.js";
import type { RankReply, RankRequest, RankWorkerData } from "./cpu-rank-worker.js";
import { planLayout, rankConfig, type TpLayout } from "./layout.js";
import { buildRankModel } from "./rank-model.js";
import { rankSources } from "./rank-sources.js";
import { rankWorkerUrl, watchRankWorkers } from "./rank-workers.js";
import { createShmState, ShmCommunicator } from "./shm-communicator.js";

export interface CpuTpOptions {
  tensorParallelSize: number;
  numBlocks: number;
  blockSize: number;
  maxModelLen: number;
  /** A rank waiting longer than this in a collective fails the step (default 300 s). */
  timeoutMs?: number;
  /**
   * Modules (specifiers or file URLs) every worker imports before building its shard: the
   * packages that registered implementations or weight kinds in this thread (e.g. "@marlin/sparse"),
   * since each worker thread has a registry of its own. @marlin/kernel's are always there.
   */
  imports?: string[];
}

/** Each rank's share of the cores: tp ranks of a process must not each start a thread per core. */
export function rankThreadShare(tp: number): number {
  return Math.max(1, Math.floor(availableParallelism() / tp));
}

export class CpuTpRunner implements ModelRunner {
  readonly device = "cpu" as const;
  readonly config: ModelConfig;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly maxModelLen: number;
  readonly layout: TpLayout;
  /** Rank 0's shard. */
  readonly model: CpuLlama;
  private readonly cache: CpuKvCache;
  private readonly comm: ShmCommunicator;
  private readonly workers: Worker[];
  private failure?: string;
  private disposed = false;

  private constructor(config: ModelConfig, layout: TpLayout, model: CpuLlama, comm: ShmCommunicator, workers: Worker[], opts: CpuTpOptions) {
    this.config = config;
    this.layout = layout;
    this.model = model;
    this.comm = comm;
    this.workers = workers;
    this.numBlocks = opts.numBlocks;
    this.blockSize = opts.blockSize;
    this.maxModelLen = opts.maxModelLen;
    this.cache = new CpuKvCache(rankConfig(config, layout, 0), model.layers.length, opts.numBlocks, opts.blockSize);
    watchRankWorkers(workers, comm, (reason) => (this.failure ??= reason), () => this.disposed);
  }

  get tensorParallelSize(): number {
    return this.layout.tp;
  }

  static async create(config: ModelConfig, sources: ModelSources, opts: CpuTpOptions): Promise<CpuTpRunner> {
    const layout = planLayout(config, opts.tensorParallelSize, sources);
    const state = createShmState(layout.tp, Math.max(1 << 16, config.hiddenSize * 256));
    const url = rankWorkerUrl("cpu-rank-worker");
    const workers: Worker[] = [];
    try {
      const ready: Promise<void>[] = [];
      for (let rank = 1; rank < layout.tp; rank++) {
        const data: RankWorkerData = {
          rank,
          state,
          config,
          layout,
          sources: rankSources(sources, config, layout, rank),
          maxPositions: opts.maxModelLen,
          numBlocks: opts.numBlocks,
          blockSize: opts.blockSize,
          timeoutMs: opts.timeoutMs,
          imports: opts.imports,
        };
        const w = new Worker(url, { workerData: { marlinRank: true, data } });
        workers.push(w);
        ready.push(
          new Promise<void>((resolve, reject) => {
            w.once("message", (m: RankReply) => (m.type === "ready" ? resolve() : reject(new CommunicatorError(rank, `failed to load: ${m.message}`))));
            w.once("error", (e) => reject(new CommunicatorError(rank, `worker failed: ${e.message}`, { cause: e })));
            w.once("exit", (code) => reject(new CommunicatorError(rank, `worker exited (code ${code}) before it was ready`)));
          }),
        );
      }
      const comm = new ShmCommunicator(state, 0, { timeoutMs: opts.timeoutMs });
      const model = buildRankModel(config, layout, rankSources(sources, config, layout, 0), comm, opts.maxModelLen);
      await Promise.all(ready);
      for (const w of workers) w.removeAllListeners();
      return new CpuTpRunner(config, layout, model, comm, workers, opts);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }

  /** Runs the batch on every rank; rank 0's logits of logitRows. */
  private forward(rows: PagedRows, logitRows: Int32Array): Float32Array {
    if (this.failure) throw new CommunicatorError(0, `the tensor-parallel group failed earlier: ${this.failure}`);
    const batch = { tokens: rows.tokens, positions: rows.positions, slots: rows.slots, seqOfRow: rows.seqOfRow, blockTables: rows.blockTables, maxBlocks: rows.maxBlocks };
    const msg: RankRequest = { type: "forward", batch, logitRows };
    for (const w of this.workers) w.postMessage(msg);
    // rank 0 is the engine's thread: its core share holds only while it runs its shard
    const ops = cpuOps();
    const prev = ops.setThreadShare?.(rankThreadShare(this.layout.tp));
    try {
      return this.model.forward(batch, this.cache, logitRows);
    } catch (e) {
      this.comm.abort(`rank 0: ${(e as Error).message}`);
      this.failure ??= (e as Error).message;
      throw e;
    } finally {
      if (prev !== undefined) ops.setThreadShare?.(prev);
    }
  }

  execute(batch: StepBatch): Int32Array {
    const out = new Int32Array(batch.sampleRows.length);
    if (batch.tokens.length === 0) return out;
    const logits = this.forward(batch, batch.sampleRows);
    if (out.length === 0) return out;
    const s = batch.sampling;
    cpuOps().sample(logits, out.length, this.config.vocabSize, s.temperature, s.topK, s.topP, s.seeds, s.counters, out);
    return out;
  }

  score(rows: PagedRows, logitRows: Int32Array, targets: Int32Array): Float64Array {
    const logits = this.forward(rows, logitRows);
    const out = new Float64Array(logitRows.length);
    cpuOps().logprobs(logits, logitRows.length, this.config.vocabSize, targets, out);
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of this.workers) {
      w.postMessage({ type: "exit" } satisfies RankRequest);
      void w.terminate();
    }
    this.model.dispose();
  }
}
