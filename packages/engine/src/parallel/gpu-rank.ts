/**
 * One GPU rank's weights and runner: the rank's shard of every layer (column-parallel q/k/v and
 * gate/up, row-parallel o and down with their all-reduce), its rows of the embedding and of
 * lm_head, norms replicated, all on the rank's device. The runner is the single-GPU runner over
 * the rank's config (its heads and intermediate features) with the tensor-parallel hooks.
 */
import { InvalidArgumentError } from "@marlin/core";
import { f32ToF16 } from "@marlin/format";
import type { Stream } from "@marlin/kernel";
import { GpuModelRunner, type GpuRunnerOptions, type GpuWeights, placeWeights } from "../gpu/gpu-runner.js";
import { kvBytesPerToken, type ModelConfig } from "../model/config.js";
import { linearToF32 } from "../model/weights.js";
import type { DeviceCommunicator } from "./device-communicator.js";
import { prepareGpuShard } from "./gpu-shard-linear.js";
import { rankConfig, type TpLayout } from "./layout.js";
import { type RankSources, rankLayerLinears } from "./rank-sources.js";

export interface GpuRankWeights {
  weights: GpuWeights;
  kernels: Record<string, string>;
}

/** One rank's shards, embedding rows and lm_head rows on device `gpu` (norms replicated). */
export function uploadRankWeights(config: ModelConfig, layout: TpLayout, rs: RankSources, comm: DeviceCommunicator, gpu: number, maxRows: number, stream: Stream): GpuRankWeights {
  const H = config.hiddenSize;
  const per = layout.vocabPerRank;
  const col = { gpu, maxRows, stream };
  const row = { ...col, reduce: comm };
  const lmHead = () => {
    const h = f32ToF16(linearToF32(rs.lmHead));
    if (h.length !== per * H) throw new InvalidArgumentError(`rank ${rs.rank}: lm_head shard holds ${h.length} values, expected ${per}x${H}`);
    return h;
  };
  const linears = (l: RankSources["layers"][number]) => rankLayerLinears(l, (src, bias, pad, rowParallel) => prepareGpuShard(src, bias, pad, rowParallel ? row : col));
  return placeWeights(gpu, rs.layers, linears, { embed: rs.embed, norm: rs.norm, lmHead });
}

/** The rank's runner over uploaded weights; opts.numBlocks must be the group's (every rank the same). */
export function rankRunner(config: ModelConfig, layout: TpLayout, rank: number, w: GpuRankWeights, comm: DeviceCommunicator, stream: Stream, opts: GpuRunnerOptions): GpuModelRunner {
  const tp = { comm, vocabStart: layout.vocab[rank].start, vocabPerRank: layout.vocabPerRank };
  return new GpuModelRunner(rankConfig(config, layout, rank), w.weights, opts, stream, w.kernels, tp);
}

/** KV bytes per cache block of one rank (its kv heads, every layer, K and V in fp16). */
export function rankBlockBytes(config: ModelConfig, layout: TpLayout, rank: number, blockSize: number): number {
  return blockSize * kvBytesPerToken(rankConfig(config, layout, rank), 2);
}
