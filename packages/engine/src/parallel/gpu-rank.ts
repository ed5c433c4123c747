/**
 * One GPU rank's weights and runner: the rank's shard of every layer (column-parallel q/k/v and
 * gate/up, row-parallel o and down with their all-reduce), its rows of the embedding and of
 * lm_head, norms replicated, all on the rank's device. The runner is the single-GPU runner over
 * the rank's config (its heads and intermediate features) with the tensor-parallel hooks.
 */
import { InvalidArgumentError } from "@marlin/core";
import { f32ToF16 } from "@marlin/format";
import { DeviceBuffer, type Stream } from "@marlin/kernel";
import { type GpuLayerWeights, GpuModelRunner, type GpuRunnerOptions, type GpuWeights, linearPlans } from "../gpu/gpu-runner.js";
import type { ModelConfig } from "../model/config.js";
import { disposeLinears, FUSED_LINEARS } from "../model/linears.js";
import { fuseLinears, linearToF32 } from "../model/weights.js";
import type { DeviceCommunicator } from "./device-communicator.js";
import { prepareGpuShard } from "./gpu-shard-linear.js";
import { rankConfig, type TpLayout } from "./layout.js";
import type { RankSources } from "./rank-sources.js";
import { NO_PAD } from "./shard.js";

export interface GpuRankWeights {
  weights: GpuWeights;
  kernels: Record<string, string>;
}

/** Most rows one pass takes (the single-GPU runner's rule). */
export const runnerRows = (opts: GpuRunnerOptions): number => Math.max(opts.maxNumBatchedTokens ?? 2048, opts.maxNumSeqs ?? 64);

export function uploadRankWeights(config: ModelConfig, layout: TpLayout, rs: RankSources, comm: DeviceCommunicator, gpu: number, maxRows: number, stream: Stream): GpuRankWeights {
  const H = config.hiddenSize;
  const per = layout.vocabPerRank;
  const owned: DeviceBuffer[] = [];
  const layers: GpuLayerWeights[] = [];
  const up = (a: Float32Array | Uint16Array) => {
    const b = DeviceBuffer.from(a, gpu);
    owned.push(b);
    return b;
  };
  const col = { gpu, maxRows, stream };
  const row = { ...col, reduce: comm };
  try {
    for (const l of rs.layers) {
      const inputNorm = up(l.inputNorm);
      const postNorm = up(l.postNorm);
      const qkv = fuseLinears(FUSED_LINEARS.qkv, l.linears);
      const gu = fuseLinears(FUSED_LINEARS.gateUp, l.linears);
      const done: { dispose(): void }[] = [];
      const track = <T extends { dispose(): void }>(x: T): T => {
        done.push(x);
        return x;
      };
      try {
        layers.push({
          inputNorm,
          postNorm,
          qkv: track(prepareGpuShard(qkv.source, qkv.bias, NO_PAD, col)),
          o: track(prepareGpuShard(l.linears.o_proj, l.linears.o_proj.bias, l.pads.o_proj, row)),
          gateUp: track(prepareGpuShard(gu.source, gu.bias, NO_PAD, col)),
          down: track(prepareGpuShard(l.linears.down_proj, l.linears.down_proj.bias, l.pads.down_proj, row)),
        });
      } catch (e) {
        for (const x of done) x.dispose();
        throw e;
      }
    }
    const head = f32ToF16(linearToF32(rs.lmHead));
    if (head.length !== per * H) throw new InvalidArgumentError(`rank ${rs.rank}: lm_head shard holds ${head.length} values, expected ${per}x${H}`);
    const weights: GpuWeights = { embed: up(f32ToF16(rs.embed)), norm: up(rs.norm), lmHead: up(head), layers };
    return { weights, kernels: linearPlans(layers) };
  } catch (e) {
    for (const l of layers) disposeLinears(l as never);
    for (const b of owned) b.free();
    throw e;
  }
}

/** The rank's runner over uploaded weights; opts.numBlocks must be the group's (every rank the same). */
export function rankRunner(config: ModelConfig, layout: TpLayout, rank: number, w: GpuRankWeights, comm: DeviceCommunicator, stream: Stream, opts: GpuRunnerOptions): GpuModelRunner {
  const tp = { comm, vocabStart: layout.vocab[rank].start, vocabPerRank: layout.vocabPerRank };
  return new GpuModelRunner(rankConfig(config, layout, rank), w.weights, opts, stream, w.kernels, tp);
}

/** KV bytes per cache block of one rank (its kv heads, every layer, K and V in fp16). */
export function rankBlockBytes(config: ModelConfig, layout: TpLayout, rank: number, blockSize: number): number {
  const c = rankConfig(config, layout, rank);
  return 2 * c.numLayers * blockSize * c.numKvHeads * c.headDim * 2;
}
