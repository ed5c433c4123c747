/**
 * Round-to-nearest: the baseline GPTQ must beat. Each group's params from its own rows, no error
 * feedback. With a Hessian, the optional range search is scored by it and lossEstimate is filled.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";
import { hessianScorer } from "./gptq.js";
import { type Bits, type ClipOptions, findGroupParams, maxQ, quantizeValue, resolveClip } from "./quantizer.js";
import { checkCommon, dequantize, groupCount, hessianError, type QuantResult, toFloat64Weights } from "./result.js";

export interface RtnOptions {
  bits?: Bits;
  groupSize?: number;
  symmetric?: boolean;
  /** Range search; scored by `hessian` when given, else by the plain squared error. */
  clip?: boolean | ClipOptions;
  /** H [k, k] of the layer input: scores the range search and gives lossEstimate. */
  hessian?: Float64Array;
}

/** Quantizes W [k, n] (k inputs x n outputs) by rounding to nearest. */
export function rtnQuantize(w: Float32Array | Float64Array, k: number, options: RtnOptions = {}): QuantResult {
  if (!Number.isInteger(k) || k <= 0) throw new ShapeError(`k must be a positive integer, got ${k}`);
  const n = w.length / k;
  const bits = options.bits ?? 4;
  const gs = options.groupSize ?? 128;
  const symmetric = options.symmetric ?? true;
  checkCommon(bits, gs, k, n);
  const clip = resolveClip(options.clip);
  const H = options.hessian;
  if (H && H.length !== k * k) throw new ShapeError(`hessian: expected ${k} x ${k}, got ${H.length} values`);
  if (H && clip && H.some((v) => !Number.isFinite(v))) throw new InvalidArgumentError("hessian has non-finite values");
  const W = toFloat64Weights(w, k, n);
  const grid = { bits, symmetric };
  const groups = groupCount(k, gs);
  const size = gs > 0 ? gs : k;
  const scales = new Float64Array(groups * n);
  const zeros = new Float64Array(groups * n);
  const q = new Uint8Array(k * n);
  const gIdx = new Int32Array(k);
  const maxq = maxQ(bits);
  for (let g = 0; g < groups; g++) {
    const r0 = g * size;
    const r1 = Math.min(k, r0 + size);
    let scorer: Parameters<typeof findGroupParams>[8];
    if (clip) {
      scorer = { opts: clip, scorer: H ? hessianScorer(H, k, r0, r1, clip) : { kind: "diag", w: new Float64Array(r1 - r0).fill(1) } };
    }
    findGroupParams(W, n, r0, r1, grid, scales, zeros, g * n, scorer);
    for (let i = r0; i < r1; i++) {
      gIdx[i] = g;
      for (let j = 0; j < n; j++) q[i * n + j] = quantizeValue(W[i * n + j], scales[g * n + j], zeros[g * n + j], maxq);
    }
  }
  const res: QuantResult = {
    k,
    n,
    bits,
    groupSize: gs,
    symmetric,
    actOrder: false,
    staticGroups: false,
    q,
    scales: Float32Array.from(scales),
    zeros: Uint8Array.from(zeros),
    gIdx,
    lossEstimate: Number.NaN,
    percDamp: 0,
    deadInputs: 0,
  };
  if (H) res.lossEstimate = hessianError(W, dequantize(res), H, k, n);
  return res;
}
