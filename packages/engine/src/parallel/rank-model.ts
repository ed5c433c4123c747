/**
 * One rank's model on the CPU: CpuLlama over the rank's config (its heads and intermediate
 * features) with sharded linears, a vocabulary-parallel embedding (rows outside the rank's range
 * are zero, then summed over ranks) and a vocabulary-parallel lm_head (logits gathered). Every rank
 * runs the same forward, so every collective is called in the same order everywhere.
 */
import { CPU } from "@marlin/core";
import { CpuLlama } from "../cpu/cpu-model.js";
import type { ModelConfig } from "../model/config.js";
import type { LayerLinears } from "../model/llama.js";
import type { Communicator } from "./communicator.js";
import { rankConfig, type TpLayout } from "./layout.js";
import { type RankSources, rankLayerLinears } from "./rank-sources.js";
import { NO_PAD } from "./shard.js";
import { prepareShard, type ShardLinear, WrappedLinear } from "./shard-linear.js";

/** lm_head over the rank's vocabulary rows, then every rank's logits gathered into [m, V]. */
export class VocabParallelHead extends WrappedLinear<ShardLinear> {
  private part = new Float32Array(0);
  private all = new Float32Array(0);
  constructor(
    inner: ShardLinear,
    vocab: number,
    private readonly comm: Communicator,
  ) {
    super(inner, vocab, inner.k, "lm_head");
  }
  override forward(x: Float32Array, out: Float32Array, m: number): void {
    const per = this.inner.n;
    const N = this.comm.worldSize;
    const V = this.n;
    if (this.part.length < m * per) this.part = new Float32Array(m * per);
    if (this.all.length < m * per * N) this.all = new Float32Array(m * per * N);
    this.inner.forward(x, this.part, m);
    this.comm.allGather(this.part, this.all, m * per);
    // all = [rank][row][per] -> out = [row][V], dropping the last rank's padding
    for (let r = 0; r < N; r++) {
      const v0 = r * per;
      const w = Math.min(per, V - v0);
      if (w <= 0) continue;
      for (let row = 0; row < m; row++) out.set(this.all.subarray((r * m + row) * per, (r * m + row) * per + w), row * V + v0);
    }
  }
}

export function buildRankModel(config: ModelConfig, layout: TpLayout, rs: RankSources, comm: Communicator, maxPositions: number): CpuLlama {
  const H = config.hiddenSize;
  const opts = { device: CPU, maxRows: 1 << 20 };
  const reduce = { ...opts, reduce: comm };
  const v0 = layout.vocab[rs.rank].start;
  const per = layout.vocabPerRank;
  const layerLinears = (li: number): LayerLinears<Float32Array> =>
    rankLayerLinears(rs.layers[li], (src, bias, pad, rowParallel) => prepareShard(src, bias, pad, rowParallel ? reduce : opts));
  const lmHead = new VocabParallelHead(prepareShard(rs.lmHead, undefined, NO_PAD, opts), config.vocabSize, comm);
  const embed = (tokens: Int32Array, out: Float32Array) => {
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t] - v0;
      if (id >= 0 && id < per) out.set(rs.embed.subarray(id * H, id * H + H), t * H);
      else out.fill(0, t * H, t * H + H);
    }
    comm.allReduceSum(out, tokens.length * H);
  };
  const sources = { embed: rs.embed, norm: rs.norm, lmHead: rs.lmHead, layers: rs.layers.map((l) => ({ inputNorm: l.inputNorm, postNorm: l.postNorm, linears: l.linears })) };
  return new CpuLlama(rankConfig(config, layout, rs.rank), sources, maxPositions, { layerLinears, lmHead, embed });
}
