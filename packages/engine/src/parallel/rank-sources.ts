/**
 * One rank's weights, cut from the whole model by the layout (layout.ts): made on the first rank
 * and handed to each worker (structured clone), so a worker never holds the whole model.
 */
import { InvalidArgumentError } from "@marlin/core";
import type { ModelConfig } from "../model/config.js";
import { FUSED_LINEARS } from "../model/linears.js";
import { fuseLinears, type LinearName, type LinearSource, type ModelSources } from "../model/weights.js";
import { TensorParallelError } from "./communicator.js";
import type { Range, TpLayout } from "./layout.js";
import { type InputPad, NO_PAD, padSource, shardColumns, shardRows } from "./shard.js";

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

/** Prepares one shard; `rowParallel` (o, down): its input is padded by `pad` and its output all-reduced. */
export type ShardPreparer<L> = (src: LinearSource, bias: Float32Array | undefined, pad: InputPad, rowParallel: boolean) => L;

/**
 * A rank's four fused linears of one layer (CPU or GPU shards, whatever `prepare` makes): q/k/v and
 * gate/up fused column shards, o and down row shards. What was prepared is disposed again if one fails.
 */
export function rankLayerLinears<L extends { dispose(): void }>(l: RankLayerSources, prepare: ShardPreparer<L>): { qkv: L; o: L; gateUp: L; down: L } {
  const done: L[] = [];
  const track = (x: L): L => {
    done.push(x);
    return x;
  };
  try {
    const qkv = fuseLinears(FUSED_LINEARS.qkv, l.linears);
    const gu = fuseLinears(FUSED_LINEARS.gateUp, l.linears);
    return {
      qkv: track(prepare(qkv.source, qkv.bias, NO_PAD, false)),
      o: track(prepare(l.linears.o_proj, l.linears.o_proj.bias, l.pads.o_proj, true)),
      gateUp: track(prepare(gu.source, gu.bias, NO_PAD, false)),
      down: track(prepare(l.linears.down_proj, l.linears.down_proj.bias, l.pads.down_proj, true)),
    };
  } catch (e) {
    for (const x of done) x.dispose();
    throw e;
  }
}
