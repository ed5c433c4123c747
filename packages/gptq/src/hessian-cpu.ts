/**
 * The Hessian H = 2/N * sum x x^T on the CPU through the engine's native multi-threaded fp32
 * linear op (X^T X per chunk of tokens, fp32 within a chunk, float64 across chunks). Same running
 * mean and result as HessianAccumulator, ~20-50x faster for whole-model runs.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";
import { cpuOps } from "@marlin/engine";

/** Tokens per native product: bounds fp32 accumulation length and the transposed copy. */
const CHUNK = 2048;

export class CpuHessian {
  readonly k: number;
  private readonly h: Float64Array;
  private n = 0;

  constructor(k: number) {
    if (!Number.isInteger(k) || k <= 0) throw new InvalidArgumentError(`CpuHessian: k must be a positive integer, got ${k}`);
    this.k = k;
    this.h = new Float64Array(k * k);
  }

  get count(): number {
    return this.n;
  }

  /** Adds token rows x [tokens, k]; refuses non-finite values. */
  add(x: Float32Array, tokens = x.length / this.k): void {
    const k = this.k;
    if (!Number.isInteger(tokens) || tokens < 0 || x.length < tokens * k) throw new ShapeError(`CpuHessian.add: ${x.length} values is not [tokens, ${k}]`);
    for (let i = 0; i < tokens * k; i++) if (!Number.isFinite(x[i])) throw new InvalidArgumentError(`CpuHessian.add: input value ${i} is ${x[i]}`);
    const ops = cpuOps();
    const prod = new Float32Array(k * k);
    for (let t0 = 0; t0 < tokens; t0 += CHUNK) {
      const tc = Math.min(CHUNK, tokens - t0);
      // xt [k, tc]: the op computes out[m, n] = a[m, kk] . b[n, kk]^T, here X^T X with kk = tokens.
      const xt = new Float32Array(k * tc);
      for (let t = 0; t < tc; t++) {
        const src = (t0 + t) * k;
        for (let i = 0; i < k; i++) xt[i * tc + t] = x[src + i];
      }
      const packed = new Float32Array(ops.packedLinearSize(k, tc));
      ops.packLinear(xt, k, tc, packed);
      ops.linear(xt, packed, null, prod, k, k, tc);
      const total = this.n + tc;
      const keep = this.n / total;
      const scale = 2 / total;
      const h = this.h;
      for (let i = 0; i < k * k; i++) h[i] = h[i] * keep + scale * prod[i];
      this.n = total;
    }
  }

  /** H (k x k); a live view. Symmetrized: the two fp32 halves may differ in the last bit. */
  get matrix(): Float64Array {
    const k = this.k;
    const h = this.h;
    for (let i = 0; i < k; i++)
      for (let j = 0; j < i; j++) {
        const v = 0.5 * (h[i * k + j] + h[j * k + i]);
        h[i * k + j] = v;
        h[j * k + i] = v;
      }
    return h;
  }
}
