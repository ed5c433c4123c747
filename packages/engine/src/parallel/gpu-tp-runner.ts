/**
 * Tensor parallelism on GPUs: rank 0 runs in the engine's thread, ranks 1..tp-1 in worker threads
 * (gpu-rank-worker.ts), each on its own device and stream with its own shard, KV cache, CUDA
 * graphs and Marlin workspaces. The scheduler runs on rank 0 only; each step rank 0 posts the batch
 * to every worker and runs the same execute() itself, so every rank takes the same graph decisions
 * (warm, capture, replay are a function of the batches seen) and calls the same collectives in the
 * same order. Rank 0 samples from the gathered logits.
 *
 * Communicator: NCCL when every rank has a GPU of its own (its collectives are captured in the
 * decode graphs); the host-staged one when ranks share a device (no graphs; slow, for checking
 * the sharded runner on one GPU).
 */

import { Worker } from "node:worker_threads";
import { memInfo, Stream } from "@marlin/kernel";
import type { ModelRunner, PagedRows, StepBatch } from "../core/runner.js";
import { disposeGpuWeights, type GpuModelRunner, type GpuRunnerOptions, runnerRows } from "../gpu/gpu-runner.js";
import type { ModelConfig } from "../model/config.js";
import type { ModelSources } from "../model/weights.js";
import { CommunicatorError } from "./communicator.js";
import type { DeviceCommunicator } from "./device-communicator.js";
import { rankBlockBytes, rankRunner, uploadRankWeights } from "./gpu-rank.js";
import { type GpuCommSpec, type GpuRankReply, type GpuRankRequest, type GpuRankWorkerData, joinGroup } from "./gpu-rank-worker.js";
import { planLayout, type TpLayout } from "./layout.js";
import { NcclCommunicator } from "./nccl-communicator.js";
import { rankSources } from "./rank-sources.js";
import { rankWorkerUrl, watchRankWorkers } from "./rank-workers.js";
import { createShmState } from "./shm-communicator.js";

export interface GpuTpOptions extends GpuRunnerOptions {
  tensorParallelSize: number;
  /** Device of each rank (default 0..tp-1). Devices may repeat only with the host-staged communicator. */
  devices?: number[];
  /** Default: NCCL when the devices are distinct, else host-staged. */
  communicator?: "nccl" | "host";
  /** Host-staged: a rank waiting longer than this in a collective fails the step (default 300 s). */
  timeoutMs?: number;
  /** Modules every worker imports before building its shard (implementations registered in this thread). */
  imports?: string[];
}

/** Resolves with what `want` says, rejects on an error reply, a worker error or an early exit. */
function reply<T extends GpuRankReply["type"]>(w: Worker, rank: number, want: T): Promise<Extract<GpuRankReply, { type: T }>> {
  return new Promise((resolve, reject) => {
    const off = () => {
      w.off("message", onMsg);
      w.off("error", onErr);
      w.off("exit", onExit);
    };
    const onMsg = (m: GpuRankReply) => {
      if (m.type === want) {
        off();
        resolve(m as Extract<GpuRankReply, { type: T }>);
      } else if (m.type === "error") {
        off();
        reject(new CommunicatorError(rank, `failed to load: ${m.message}`));
      }
    };
    const onErr = (e: Error) => {
      off();
      reject(new CommunicatorError(rank, `worker failed: ${e.message}`, { cause: e }));
    };
    const onExit = (code: number) => {
      off();
      reject(new CommunicatorError(rank, `worker exited (code ${code}) before it was ${want}`));
    };
    w.on("message", onMsg);
    w.once("error", onErr);
    w.once("exit", onExit);
  });
}

export class GpuTpRunner implements ModelRunner {
  readonly device = "cuda" as const;
  readonly config: ModelConfig;
  readonly layout: TpLayout;
  /** Rank 0's runner (its timings, plans and graphs). */
  readonly rank0: GpuModelRunner;
  readonly communicator: "nccl" | "host";
  private readonly comm: DeviceCommunicator;
  private readonly workers: Worker[];
  private failure?: string;
  private disposed = false;

  private constructor(config: ModelConfig, layout: TpLayout, rank0: GpuModelRunner, comm: DeviceCommunicator, kind: "nccl" | "host", workers: Worker[]) {
    this.config = config;
    this.layout = layout;
    this.rank0 = rank0;
    this.comm = comm;
    this.communicator = kind;
    this.workers = workers;
    watchRankWorkers(workers, comm, (reason) => (this.failure ??= reason), () => this.disposed);
  }

  get tensorParallelSize(): number {
    return this.layout.tp;
  }
  get numBlocks(): number {
    return this.rank0.numBlocks;
  }
  get blockSize(): number {
    return this.rank0.blockSize;
  }
  get maxModelLen(): number {
    return this.rank0.maxModelLen;
  }
  get maxBatchRows(): number {
    return this.rank0.maxBatchRows;
  }
  get kernels(): Record<string, string> {
    return this.rank0.kernels;
  }

  static async create(config: ModelConfig, sources: ModelSources, opts: GpuTpOptions): Promise<GpuTpRunner> {
    const layout = planLayout(config, opts.tensorParallelSize, sources);
    const tp = layout.tp;
    const devices = opts.devices ?? Array.from({ length: tp }, (_, r) => r);
    const kind = opts.communicator ?? (new Set(devices).size === tp ? "nccl" : "host");
    const spec: GpuCommSpec =
      kind === "nccl" ? { kind, id: NcclCommunicator.uniqueId() } : { kind, state: createShmState(tp, Math.max(1 << 16, config.hiddenSize * 256)), timeoutMs: opts.timeoutMs };
    const { numBlocks, gpuMemoryFraction, imports } = opts;
    // only the runner's own options travel to the workers (load options may hold what cannot be cloned)
    const runnerOpts: GpuRunnerOptions = {
      blockSize: opts.blockSize,
      maxModelLen: opts.maxModelLen,
      maxNumSeqs: opts.maxNumSeqs,
      maxNumBatchedTokens: opts.maxNumBatchedTokens,
      cudaGraphs: opts.cudaGraphs,
      decodeAttention: opts.decodeAttention,
    };
    const url = rankWorkerUrl("gpu-rank-worker");
    const workers: Worker[] = [];
    let comm: DeviceCommunicator | undefined;
    let w0: ReturnType<typeof uploadRankWeights> | undefined;
    let rank0: GpuModelRunner | undefined;
    const stream = new Stream(devices[0]);
    // a reply that fails while this thread awaits another must not be an unhandled rejection
    const guard = <T>(p: Promise<T>): Promise<T> => {
      p.catch(() => {});
      return p;
    };
    try {
      const joining: Promise<unknown>[] = [];
      const loaded: Promise<Extract<GpuRankReply, { type: "loaded" }>>[] = [];
      for (let rank = 1; rank < tp; rank++) {
        const data: GpuRankWorkerData = {
          rank,
          gpu: devices[rank],
          comm: spec,
          config,
          layout,
          sources: rankSources(sources, config, layout, rank),
          runner: { ...runnerOpts, gpu: devices[rank] },
          imports,
        };
        const w = new Worker(url, { workerData: { marlinGpuRank: true, data } });
        workers.push(w);
        joining.push(guard(reply(w, rank, "joining")));
        loaded.push(guard(reply(w, rank, "loaded")));
      }
      // NCCL's init blocks this thread until every rank called it: only once the workers are about to
      await Promise.all(joining);
      comm = joinGroup(spec, 0, tp, devices[0], stream);
      w0 = uploadRankWeights(config, layout, rankSources(sources, config, layout, 0), comm, devices[0], runnerRows(runnerOpts), stream);
      const peers = await Promise.all(loaded);
      // every rank holds the same block ids: the count is what the tightest device can hold
      const blockSize = opts.blockSize ?? 16;
      let blocks = numBlocks ?? (opts.kvCacheTokens ? Math.ceil(opts.kvCacheTokens / blockSize) : 0);
      if (!blocks) {
        const free = [memInfo(devices[0]).free, ...peers.map((p) => p.free)];
        const share = (r: number) => devices.filter((d) => d === devices[r]).length;
        blocks = Math.min(...free.map((f, r) => Math.floor((f * (gpuMemoryFraction ?? 0.8)) / share(r) / rankBlockBytes(config, layout, r, blockSize))));
      }
      const ready = workers.map((w, i) => guard(reply(w, i + 1, "ready")));
      for (const w of workers) w.postMessage({ type: "build", numBlocks: blocks } satisfies GpuRankRequest);
      rank0 = rankRunner(config, layout, 0, w0, comm, stream, { ...runnerOpts, gpu: devices[0], numBlocks: blocks });
      await Promise.all(ready);
      return new GpuTpRunner(config, layout, rank0, comm, kind, workers);
    } catch (e) {
      comm?.abort((e as Error).message);
      // not awaited: a worker blocked inside ncclCommInitRank (rank 0 never joined) ends only when the process does
      for (const w of workers) void w.terminate();
      if (rank0) rank0.dispose(); // its weights and stream with it
      else {
        if (w0) disposeGpuWeights(w0.weights);
        stream.destroy();
      }
      comm?.dispose();
      throw e;
    }
  }

  private post(msg: GpuRankRequest): void {
    if (this.failure) throw new CommunicatorError(0, `the tensor-parallel group failed earlier: ${this.failure}`);
    for (const w of this.workers) w.postMessage(msg);
  }

  private run<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      this.comm.abort(`rank 0: ${(e as Error).message}`);
      this.failure ??= (e as Error).message;
      throw e;
    }
  }

  execute(batch: StepBatch): Int32Array {
    if (batch.tokens.length === 0) return new Int32Array(batch.sampleRows.length);
    this.post({ type: "execute", batch });
    return this.run(() => this.rank0.execute(batch));
  }

  score(rows: PagedRows, logitRows: Int32Array, targets: Int32Array): Float64Array {
    this.post({ type: "score", rows, logitRows, targets });
    return this.run(() => this.rank0.score(rows, logitRows, targets));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of this.workers) w.postMessage({ type: "exit" } satisfies GpuRankRequest);
    this.rank0.dispose();
    this.comm.dispose();
    // a worker frees its device memory and leaves on "exit"; one that does not is ended
    for (const w of this.workers) setTimeout(() => void w.terminate(), 5000).unref();
  }
}
