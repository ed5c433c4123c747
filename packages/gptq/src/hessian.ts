/**
 * The GPTQ Hessian of a linear layer's input: H = 2/N * sum over calibration tokens of x x^T
 * (k x k, float64), kept as a running mean so batches of any size can be added in turn:
 * H <- H * N/(N+t) + 2/(N+t) * X^T X for a batch X of t tokens. N counts tokens.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";

/** Tokens transposed per pass: each pass reads its [k, CHUNK] panel k^2/2 times from cache. */
const CHUNK = 128;

export class HessianAccumulator {
  readonly k: number;
  private readonly h: Float64Array;
  private n = 0;
  private mirrored = true;
  private readonly panel: Float64Array;

  constructor(k: number) {
    if (!Number.isInteger(k) || k <= 0) throw new InvalidArgumentError(`HessianAccumulator: k must be a positive integer, got ${k}`);
    this.k = k;
    this.h = new Float64Array(k * k);
    this.panel = new Float64Array(k * CHUNK);
  }

  /** Tokens seen so far. */
  get count(): number {
    return this.n;
  }

  /**
   * Adds a batch of token rows x [tokens, k] (row-major). Non-finite inputs are refused: one NaN
   * would poison the whole Hessian.
   */
  add(x: Float32Array | Float64Array, tokens = x.length / this.k): void {
    const k = this.k;
    if (!Number.isInteger(tokens) || tokens < 0 || x.length < tokens * k) {
      throw new ShapeError(`HessianAccumulator.add: ${x.length} values is not [tokens, ${k}] (tokens = ${tokens})`);
    }
    if (tokens === 0) return;
    for (let i = 0; i < tokens * k; i++) {
      if (!Number.isFinite(x[i])) throw new InvalidArgumentError(`HessianAccumulator.add: input value ${i} is ${x[i]}`);
    }
    const h = this.h;
    const total = this.n + tokens;
    const keep = this.n / total;
    const scale = 2 / total;
    // Only the upper triangle (j >= i) is maintained; the lower half is mirrored on read.
    if (this.n > 0) {
      for (let i = 0; i < k; i++) for (let j = i; j < k; j++) h[i * k + j] *= keep;
    }
    const p = this.panel;
    for (let t0 = 0; t0 < tokens; t0 += CHUNK) {
      const tc = Math.min(CHUNK, tokens - t0);
      // panel[i, t] = x[t0 + t, i]: rows of the panel are contiguous per input feature.
      for (let t = 0; t < tc; t++) {
        const src = (t0 + t) * k;
        for (let i = 0; i < k; i++) p[i * CHUNK + t] = x[src + i];
      }
      // 2 x 4 register tiles over the upper triangle (j >= i). The tile's (i+1, i) entry lands in
      // the lower half, which the mirror on read overwrites.
      let i = 0;
      for (; i + 1 < k; i += 2) {
        const pa = i * CHUNK;
        const pb = pa + CHUNK;
        const ha = i * k;
        const hb = ha + k;
        let j = i;
        for (; j + 3 < k; j += 4) {
          const p0 = j * CHUNK;
          const p1 = p0 + CHUNK;
          const p2 = p1 + CHUNK;
          const p3 = p2 + CHUNK;
          let a0 = 0;
          let a1 = 0;
          let a2 = 0;
          let a3 = 0;
          let b0 = 0;
          let b1 = 0;
          let b2 = 0;
          let b3 = 0;
          for (let t = 0; t < tc; t++) {
            const va = p[pa + t];
            const vb = p[pb + t];
            const x0 = p[p0 + t];
            const x1 = p[p1 + t];
            const x2 = p[p2 + t];
            const x3 = p[p3 + t];
            a0 += va * x0;
            a1 += va * x1;
            a2 += va * x2;
            a3 += va * x3;
            b0 += vb * x0;
            b1 += vb * x1;
            b2 += vb * x2;
            b3 += vb * x3;
          }
          h[ha + j] += scale * a0;
          h[ha + j + 1] += scale * a1;
          h[ha + j + 2] += scale * a2;
          h[ha + j + 3] += scale * a3;
          h[hb + j] += scale * b0;
          h[hb + j + 1] += scale * b1;
          h[hb + j + 2] += scale * b2;
          h[hb + j + 3] += scale * b3;
        }
        for (; j < k; j++) {
          const pj = j * CHUNK;
          let a = 0;
          let b = 0;
          for (let t = 0; t < tc; t++) {
            const x = p[pj + t];
            a += p[pa + t] * x;
            b += p[pb + t] * x;
          }
          h[ha + j] += scale * a;
          h[hb + j] += scale * b;
        }
      }
      for (; i < k; i++) {
        const pi = i * CHUNK;
        let s = 0;
        for (let t = 0; t < tc; t++) s += p[pi + t] * p[pi + t];
        h[i * k + i] += scale * s;
      }
    }
    this.n = total;
    this.mirrored = false;
  }

  /** The current H (k x k, symmetric). A live view: later add() calls change it. */
  get matrix(): Float64Array {
    if (!this.mirrored) {
      const k = this.k;
      const h = this.h;
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) h[i * k + j] = h[j * k + i];
      this.mirrored = true;
    }
    return this.h;
  }

  /** A copy of H that later add() calls leave alone. */
  snapshot(): Float64Array {
    return this.matrix.slice();
  }
}
