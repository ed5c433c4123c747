/**
 * The "sparse24" weight kind of the registry: LinearWeights holding a packed 2:4 layer, its hooks
 * (concat along n for fused q/k/v and gate/up, the dense form) and the op that serves it.
 */
import { InvalidArgumentError, type LinearWeights, linearOp, type OtherLinearWeights, type PlacedWeights, registerWeightKind } from "@marlin/core";
import { metaWord, QUAD_K, type Sparse24Layer, sparse24Groups, TILE_N, valueWord } from "./layout.js";
import { sparse24ToDense } from "./reference.js";
import { checkPacked } from "./validate.js";

export const SPARSE24_KIND = "sparse24";
/** "sparse24.matmul" */
export const SPARSE24_MATMUL_OP = linearOp(SPARSE24_KIND);

/** A 2:4 layer as the registry sees it (groupSize and bits are copied into queries' `extra`). */
export interface Sparse24LinearWeights extends OtherLinearWeights {
  kind: "sparse24";
  bits: 4;
  groupSize: number;
  /** The packed layer on the host (absent when `placed` holds it, e.g. "sparse24-device"). */
  layer?: Sparse24Layer;
  placed?: PlacedWeights;
}

export function sparse24Weights(layer: Sparse24Layer, extra: { bias?: Float32Array; name?: string } = {}): Sparse24LinearWeights {
  checkPacked(layer);
  return { kind: SPARSE24_KIND, n: layer.n, k: layer.k, bits: 4, groupSize: layer.groupSize, layer, ...extra };
}

export function asSparse24(w: LinearWeights): Sparse24LinearWeights {
  if (w.kind !== SPARSE24_KIND) throw new InvalidArgumentError(`expected sparse24 weights, got kind "${w.kind}"`);
  return w as Sparse24LinearWeights;
}

export function hostLayer(w: Sparse24LinearWeights): Sparse24Layer {
  if (!w.layer) throw new InvalidArgumentError(`${w.name ?? "sparse24 layer"}: no host values`);
  return w.layer;
}

/**
 * Layers of one k and group size side by side along n. Tiles are 16 outputs wide and every
 * word belongs to one tile, so each part's tiles are copied into the fused tile range.
 */
export function concatSparse24(parts: Sparse24Layer[]): Sparse24Layer {
  if (!parts.length) throw new InvalidArgumentError("nothing to concatenate");
  const [a] = parts;
  for (const p of parts) {
    checkPacked(p);
    if (p.k !== a.k || p.groupSize !== a.groupSize) throw new InvalidArgumentError("fused 2:4 layers must share k and group size");
  }
  const n = parts.reduce((s, p) => s + p.n, 0);
  const { k } = a;
  const nTiles = n / TILE_N;
  const values = new Int32Array((k * n) / 16);
  const meta = new Int32Array((k * n) / 32);
  const groups = sparse24Groups(k, a.groupSize);
  const scales = new Uint16Array(groups * n);
  let t0 = 0;
  for (const p of parts) {
    const pt = p.n / TILE_N;
    for (let kq = 0; kq < k / QUAD_K; kq++) {
      values.set(p.values.subarray(valueWord(kq, 0, pt, 0, 0), valueWord(kq, pt, pt, 0, 0)), valueWord(kq, t0, nTiles, 0, 0));
      meta.set(p.meta.subarray(metaWord(kq, 0, pt, 0, 0, 0), metaWord(kq, pt, pt, 0, 0, 0)), metaWord(kq, t0, nTiles, 0, 0, 0));
    }
    for (let g = 0; g < groups; g++) scales.set(p.scales.subarray(g * p.n, (g + 1) * p.n), g * n + t0 * TILE_N);
    t0 += pt;
  }
  return { k, n, bits: 4, groupSize: a.groupSize, values, meta, scales };
}

/** Registers the kind's hooks with @marlin/core (idempotent). */
export function registerSparse24Kind(): void {
  registerWeightKind(SPARSE24_KIND, {
    concat(parts, name) {
      const layers = parts.map((p) => hostLayer(asSparse24(p)));
      return sparse24Weights(concatSparse24(layers), { name });
    },
    toDense: (w) => sparse24ToDense(hostLayer(asSparse24(w))),
  });
}
