/** Typed access to the engine's CPU ops in the addon (native/src/engine/cpu_*.cpp). */

import { NativeLoadError } from "@marlin/core";
import { native, typedError } from "@marlin/kernel";

export interface CpuOps {
  linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, out: Float32Array, m: number, n: number, k: number): void;
  packLinear(w: Float32Array, n: number, k: number, out: Float32Array): void;
  packedLinearSize(n: number, k: number): number;
  embedding(ids: Int32Array, table: Float32Array, vocab: number, hidden: number, out: Float32Array): void;
  rmsnorm(x: Float32Array, w: Float32Array, eps: number, rows: number, hidden: number, out: Float32Array): void;
  addRmsnorm(x: Float32Array, residual: Float32Array, w: Float32Array, eps: number, rows: number, hidden: number): void;
  rope(x: Float32Array, rows: number, stride: number, heads: number, headDim: number, rotDim: number, positions: Int32Array, cos: Float32Array, sin: Float32Array, maxPositions: number): void;
  siluMul(gu: Float32Array, rows: number, inter: number, out: Float32Array): void;
  storeKv(qkv: Float32Array, rows: number, stride: number, kOffset: number, vOffset: number, kvDim: number, slots: Int32Array, kCache: Float32Array, vCache: Float32Array): void;
  pagedAttention(q: Float32Array, rows: number, qStride: number, heads: number, kvHeads: number, headDim: number, kCache: Float32Array, vCache: Float32Array, blockTables: Int32Array, maxBlocks: number, blockSize: number, seqOfRow: Int32Array, posOfRow: Int32Array, scale: number, out: Float32Array): void;
  sample(logits: Float32Array, rows: number, vocab: number, temperature: Float32Array, topK: Int32Array, topP: Float32Array, seeds: Uint32Array, counters: Int32Array, out: Int32Array): void;
  logprobs(logits: Float32Array, rows: number, vocab: number, targets: Int32Array, out: Float64Array): void;
  /** The ops called from this JS thread use at most n threads (0: every core); returns the previous cap. Absent in older addons. */
  setThreadShare?(threads: number): number;
  avx2: boolean;
  /**
   * The largest dimension any op takes (2^30); every length is an overflow-checked product, so a
   * dimension beyond it is an InvalidArgumentError and a product beyond 2^48 a ShapeError.
   */
  maxDim: number;
}

let cached: CpuOps | undefined;

/** The CPU ops; NativeLoadError when the addon predates them (rebuild @marlin/kernel). */
export function cpuOps(): CpuOps {
  if (cached) return cached;
  const raw = native().engineCpu as Record<string, any> | undefined;
  if (!raw) throw new NativeLoadError("marlin.node has no engineCpu ops; rebuild it with `pnpm --filter @marlin/kernel build`");
  // Wrap each function so addon errors surface as typed @marlin/core errors.
  const wrapped: Record<string, any> = { avx2: raw.avx2, maxDim: raw.maxDim };
  for (const [k, v] of Object.entries(raw)) if (typeof v === "function") wrapped[k] = (...a: unknown[]) => {
        try {
          return v(...a);
        } catch (e) {
          throw typedError(e);
        }
      };
  cached = wrapped as CpuOps;
  return cached;
}
