/**
 * A worker thread running one GPU tensor-parallel rank (1..tp-1); rank 0 is the engine's thread
 * (gpu-tp-runner.ts). The thread makes every allocation and launch on its own device (the CUDA
 * current device is per thread) and its own stream. Loading has two phases so that every rank
 * sizes its KV cache alike: upload the shard and report the device's free memory, then, once rank
 * 0 has fixed the group's block count, build the runner. Each step rank 0 posts the batch and every
 * rank runs the same execute() / score(), meeting in the collectives.
 */
import { parentPort, workerData } from "node:worker_threads";
import { memInfo, Stream } from "@marlin/kernel";
import type { PagedRows, StepBatch } from "../core/runner.js";
import { type GpuModelRunner, type GpuRunnerOptions, runnerRows } from "../gpu/gpu-runner.js";
import type { ModelConfig } from "../model/config.js";
import type { DeviceCommunicator } from "./device-communicator.js";
import { HostStagedCommunicator } from "./device-communicator.js";
import { rankRunner, uploadRankWeights } from "./gpu-rank.js";
import type { TpLayout } from "./layout.js";
import { NcclCommunicator } from "./nccl-communicator.js";
import type { RankSources } from "./rank-sources.js";
import { ShmCommunicator, type ShmState } from "./shm-communicator.js";

/** How the ranks meet: NCCL (one GPU per rank) or the host-staged communicator over shared memory. */
export type GpuCommSpec = { kind: "nccl"; id: Uint8Array } | { kind: "host"; state: ShmState; timeoutMs?: number };

export interface GpuRankWorkerData {
  rank: number;
  gpu: number;
  comm: GpuCommSpec;
  config: ModelConfig;
  layout: TpLayout;
  sources: RankSources;
  /** Without numBlocks: rank 0 sends it after every rank reported its free memory. */
  runner: GpuRunnerOptions;
  imports?: string[];
}

export type GpuRankRequest =
  | { type: "build"; numBlocks: number }
  | { type: "execute"; batch: StepBatch }
  | { type: "score"; rows: PagedRows; logitRows: Int32Array; targets: Int32Array }
  | { type: "exit" };

export type GpuRankReply =
  | { type: "joining" }
  | { type: "loaded"; free: number; kernels: Record<string, string> }
  | { type: "ready" }
  | { type: "error"; message: string; during: "load" | "step" };

/** Joins the group from the calling thread (NCCL blocks until every rank joined). */
export function joinGroup(spec: GpuCommSpec, rank: number, tp: number, gpu: number, stream: Stream): DeviceCommunicator {
  if (spec.kind === "nccl") return NcclCommunicator.initRank(spec.id, tp, rank, gpu, { stream });
  return new HostStagedCommunicator(new ShmCommunicator(spec.state, rank, { timeoutMs: spec.timeoutMs }), stream, gpu);
}

const port = parentPort;
if (port && (workerData as { marlinGpuRank?: boolean })?.marlinGpuRank) void serve(port, (workerData as { data: GpuRankWorkerData }).data);

async function serve(port: NonNullable<typeof parentPort>, d: GpuRankWorkerData): Promise<void> {
  let comm: DeviceCommunicator | undefined;
  let runner: GpuModelRunner | undefined;
  const fail = (e: unknown, during: "load" | "step") => {
    const message = `rank ${d.rank}: ${(e as Error)?.message ?? String(e)}`;
    comm?.abort(message);
    port.postMessage({ type: "error", message, during } satisfies GpuRankReply);
  };
  try {
    // a worker has its own registry: what the engine's thread registered must be registered here too
    for (const m of d.imports ?? []) await import(m);
    const stream = new Stream(d.gpu);
    port.postMessage({ type: "joining" } satisfies GpuRankReply);
    comm = joinGroup(d.comm, d.rank, d.layout.tp, d.gpu, stream);
    const w = uploadRankWeights(d.config, d.layout, d.sources, comm, d.gpu, runnerRows(d.runner), stream);
    port.postMessage({ type: "loaded", free: memInfo(d.gpu).free, kernels: w.kernels } satisfies GpuRankReply);
    const c = comm;
    port.on("message", (msg: GpuRankRequest) => {
      try {
        if (msg.type === "build") {
          runner = rankRunner(d.config, d.layout, d.rank, w, c, stream, { ...d.runner, numBlocks: msg.numBlocks });
          port.postMessage({ type: "ready" } satisfies GpuRankReply);
        } else if (msg.type === "execute") runner?.execute(msg.batch);
        else if (msg.type === "score") runner?.score(msg.rows, msg.logitRows, msg.targets);
        else {
          runner?.dispose();
          c.dispose();
          port.close();
        }
      } catch (e) {
        fail(e, msg.type === "build" ? "load" : "step");
      }
    });
  } catch (e) {
    fail(e, "load");
  }
}
