/**
 * A worker thread running one tensor-parallel rank (1..tp-1) on the CPU. Rank 0 is the engine's
 * own thread (cpu-tp-runner.ts); each step it posts the batch here and runs its own shard, and the
 * ranks meet in the collectives of the forward pass. A rank that fails aborts the communicator, so
 * no peer waits forever, and reports the error.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CpuKvCache, type PagedBatch } from "../cpu/cpu-model.js";
import { cpuOps } from "../cpu/ops.js";
import type { ModelConfig } from "../model/config.js";
import { rankThreadShare } from "./cpu-tp-runner.js";
import { rankConfig, type TpLayout } from "./layout.js";
import { buildRankModel } from "./rank-model.js";
import type { RankSources } from "./rank-sources.js";
import { ShmCommunicator, type ShmState } from "./shm-communicator.js";

export interface RankWorkerData {
  rank: number;
  state: ShmState;
  config: ModelConfig;
  layout: TpLayout;
  sources: RankSources;
  maxPositions: number;
  numBlocks: number;
  blockSize: number;
  timeoutMs?: number;
  /** Modules imported before the shard is built (they register implementations and weight kinds). */
  imports?: string[];
}

export type RankRequest = { type: "forward"; batch: PagedBatch; logitRows: Int32Array } | { type: "exit" };
export type RankReply = { type: "ready"; kernels: Record<string, string> } | { type: "error"; message: string; during: "load" | "forward" };

const port = parentPort;
if (port && (workerData as { marlinRank?: boolean })?.marlinRank) void serve(port, (workerData as { data: RankWorkerData }).data);

async function serve(port: NonNullable<typeof parentPort>, d: RankWorkerData): Promise<void> {
  const comm = new ShmCommunicator(d.state, d.rank, { timeoutMs: d.timeoutMs });
  const fail = (e: unknown, during: "load" | "forward") => {
    const message = `rank ${d.rank}: ${(e as Error)?.message ?? String(e)}`;
    comm.abort(message);
    port.postMessage({ type: "error", message, during } satisfies RankReply);
  };
  try {
    // a worker has its own registry: what the engine's thread registered must be registered here too
    for (const m of d.imports ?? []) await import(m);
    cpuOps().setThreadShare?.(rankThreadShare(d.layout.tp));
    const model = buildRankModel(d.config, d.layout, d.sources, comm, d.maxPositions);
    const cache = new CpuKvCache(rankConfig(d.config, d.layout, d.rank), model.layers.length, d.numBlocks, d.blockSize);
    port.on("message", (msg: RankRequest) => {
      if (msg.type === "exit") {
        model.dispose();
        port.close();
        return;
      }
      try {
        model.forward(msg.batch, cache, msg.logitRows);
      } catch (e) {
        fail(e, "forward");
      }
    });
    port.postMessage({ type: "ready", kernels: model.kernels } satisfies RankReply);
  } catch (e) {
    fail(e, "load");
  }
}
