/**
 * One rank's weights, cut from the whole model by the layout (layout.ts): made on the first rank
 * and handed to each worker (structured clone), so a worker never holds the whole model.
 */
import { InvalidArgumentError } from "@marlin/core";
import type { ModelConfig } from "../model/config.js";
import type { LinearName, LinearSource, ModelSources } from "../model/weights.js";
import { TensorParallelError } from "./communicator.js";
import type { Range, TpLayout } from "./layout.js";
import { type InputPad, padSource, shardColumns, shardRows } from "./shard.js";

export interface RankLayerSources {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  /** Column shards (q/k/v, gate/up) and row shards (o, down; k padded by pads). */
  linears: Record<LinearName, LinearSource>;
  pads: { o_proj: InputPad; down_proj: InputPad };
}

export interface RankSources {
  rank: number;
  /** Rows [vocab.start, vocab.start + vocabPerRank) of the embedding, zero past V: [vocabPerRank, H]. */
  embed: Float32Array;
  norm: Float32Array;
  /** This rank's lm_head rows, zero-padded to vocabPerRank. */
  lmHead: LinearSource;
  layers: RankLayerSources[];
}

const scale = (r: Range, by: number): Range => ({ start: r.start * by, end: r.end * by });

export function rankSources(src: ModelSources, config: ModelConfig, layout: TpLayout, rank: number): RankSources {
  const H = config.hiddenSize;
  const D = config.headDim;
  const q = scale(layout.heads[rank], D);
  const kv = scale(layout.kvHeads[rank], D);
  const inter = layout.inter[rank];
  const col = (s: LinearSource, r: Range) => shardColumns(s, r.start, r.end);
  const layers = src.layers.map((l): RankLayerSources => {
    const L = l.linears;
    const o = shardRows(L.o_proj, q.start, q.end);
    const down = shardRows(L.down_proj, inter.start, inter.end);
    // row-parallel bias: added once, by rank 0
    const bias = (s: LinearSource, b?: Float32Array): LinearSource => ({ ...s, bias: rank === 0 ? b : undefined });
    return {
      inputNorm: l.inputNorm,
      postNorm: l.postNorm,
      linears: {
        q_proj: col(L.q_proj, q),
        k_proj: col(L.k_proj, kv),
        v_proj: col(L.v_proj, kv),
        o_proj: bias(o.source, L.o_proj.bias),
        gate_proj: col(L.gate_proj, inter),
        up_proj: col(L.up_proj, inter),
        down_proj: bias(down.source, L.down_proj.bias),
      },
      pads: { o_proj: o.pad, down_proj: down.pad },
    };
  });
  const V = config.vocabSize;
  const { start, end } = layout.vocab[rank];
  const per = layout.vocabPerRank;
  const embed = new Float32Array(per * H);
  embed.set(src.embed.subarray(start * H, end * H));
  const head: LinearSource = src.lmHead ?? { kind: "dense", n: V, k: H, weight: { dtype: "float32", shape: [V, H], data: src.embed }, name: "lm_head" };
  if (end <= start) throw new TensorParallelError(`a vocabulary of ${V} leaves rank ${rank} of ${layout.tp} no rows`);
  let lmHead = shardColumns(head, start, end);
  if (lmHead.n < per) {
    const padded = padSource(lmHead, H, per);
    if (!padded) throw new InvalidArgumentError(`lm_head of kind ${head.kind} cannot be padded to ${per} rows per rank`);
    lmHead = padded;
  }
  return { rank, embed, norm: src.norm, lmHead, layers };
}
