import type { Rng } from "@marlin/core";
import { relativeError } from "@marlin/core";
import { HessianAccumulator } from "../src/index.js";

/** Correlated calibration inputs X = Z L [tokens, k], with a few loud features, so H is far from diagonal. */
export function correlatedInputs(rng: Rng, tokens: number, k: number, mix = 0.5): Float64Array {
  const z = rng.fillNormal(new Float64Array(tokens * k)) as Float64Array;
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    l[i * k + i] = 1;
    for (let j = 0; j < k; j++) l[i * k + j] += (rng.normal() * mix) / Math.sqrt(k);
  }
  // per-feature magnitudes spanning ~2 decades, like real activations with outlier channels
  const mag = new Float64Array(k);
  for (let j = 0; j < k; j++) mag[j] = Math.exp(rng.normal() * 0.8) * (rng.next() < 0.03 ? 8 : 1);
  const x = new Float64Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < k; i++) {
      const v = z[t * k + i];
      if (v === 0) continue;
      for (let j = 0; j < k; j++) x[t * k + j] += v * l[i * k + j];
    }
  }
  for (let t = 0; t < tokens; t++) for (let j = 0; j < k; j++) x[t * k + j] *= mag[j];
  return x;
}

/** Direct H = 2/N X^T X. */
export function directHessian(x: Float64Array, tokens: number, k: number): Float64Array {
  const h = new Float64Array(k * k);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < k; i++) {
      const v = x[t * k + i];
      for (let j = 0; j < k; j++) h[i * k + j] += v * x[t * k + j];
    }
  }
  for (let i = 0; i < k * k; i++) h[i] *= 2 / tokens;
  return h;
}

/** Random SPD matrix B B^T / k + shift I. */
export function randomSpd(rng: Rng, k: number, shift = 0.1): Float64Array {
  const b = rng.fillNormal(new Float64Array(k * k)) as Float64Array;
  const a = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let m = 0; m < k; m++) s += b[i * k + m] * b[j * k + m];
      a[i * k + j] = a[j * k + i] = s / k;
    }
    a[i * k + i] += shift;
  }
  return a;
}


export function identityError(a: Float64Array, b: Float64Array, k: number): number {
  let worst = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let m = 0; m < k; m++) s += a[i * k + m] * b[m * k + j];
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/** Relative error against a reference (shared with every package through @marlin/core). */
export const relErr = relativeError;

/** A random layer: correlated inputs x [tokens, k], weights w [k, n] with a few large entries, H of x. */
export function randomLayer(rng: Rng, k: number, n: number, tokens: number) {
  const x = correlatedInputs(rng, tokens, k);
  const acc = new HessianAccumulator(k);
  acc.add(x, tokens);
  const w = new Float32Array(k * n);
  for (let i = 0; i < w.length; i++) w[i] = rng.normal() * 0.05 * (rng.next() < 0.01 ? 6 : 1);
  return { x, w, h: acc.snapshot() };
}
