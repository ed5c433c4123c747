/** Typed access to the engine's CUDA ops (native/src/engine/cuda_*.cu) with typed errors. */
import { NativeLoadError, NoDeviceError } from "@marlin/core";
import { type DeviceArg, native, type Stream, typedError } from "@marlin/kernel";

/** A device argument: a whole buffer or [buffer, byteOffset]. */
export type DRef = DeviceArg;

export interface CudaGraph {
  launch(stream: unknown): void;
  destroy(): void;
}

export interface GpuOps {
  /** table holds vocabulary rows [vocabStart, vocabStart + vocab) (default 0: all of it); other ids get zeros. */
  embedding(ids: DRef, table: DRef, out: DRef, rows: number, hidden: number, vocab: number, s?: Stream, vocabStart?: number): void;
  rmsnorm(x: DRef, w: DRef, out: DRef, rows: number, hidden: number, eps: number, s?: Stream): void;
  addRmsnorm(x: DRef, residual: DRef, w: DRef, rows: number, hidden: number, eps: number, s?: Stream): void;
  rope(x: DRef, positions: DRef, cos: DRef, sin: DRef, rows: number, stride: number, heads: number, headDim: number, maxPositions: number, s?: Stream): void;
  storeKv(qkv: DRef, slots: DRef, k: DRef, v: DRef, rows: number, stride: number, kOff: number, vOff: number, kvDim: number, numSlots: number, s?: Stream): void;
  /** rope of the q and k heads fused with storeKv of k and v (row layout [q heads | k heads | v heads]). */
  ropeStoreKv(
    qkv: DRef, positions: DRef, cos: DRef, sin: DRef, slots: DRef, k: DRef, v: DRef,
    rows: number, stride: number, heads: number, kvHeads: number, headDim: number, maxPositions: number, numSlots: number, s?: Stream,
  ): void;
  siluMul(gu: DRef, out: DRef, rows: number, inter: number, s?: Stream): void;
  addBias(x: DRef, bias: DRef, rows: number, n: number, s?: Stream): void;
  fillUniform(out: DRef, count: number, seed: number, lo: number, hi: number, s?: Stream): void;
  gatherRows(x: DRef, idx: DRef, out: DRef, rows: number, hidden: number, s?: Stream): void;
  /** height rows of width bytes, device to device, between pitched layouts (bytes). */
  copy2d(dst: DRef, dstPitch: number, src: DRef, srcPitch: number, width: number, height: number, s?: Stream): void;
  pagedAttention(
    q: DRef, k: DRef, v: DRef, blockTables: DRef, seqOfRow: DRef, posOfRow: DRef, out: DRef,
    shape: { rows: number; qStride: number; heads: number; kvHeads: number; headDim: number; maxBlocks: number; blockSize: number; numSeqs: number; numBlocks: number; maxContext: number; scale: number },
    s?: Stream,
  ): void;
  /** Attention of decode rows (one per sequence), split over context chunks; with fuse also RoPE + KV store of the rows. */
  decodeAttention(
    qkv: DRef, k: DRef, v: DRef, blockTables: DRef, seqOfRow: DRef, posOfRow: DRef, out: DRef,
    shape: { rows: number; qStride: number; heads: number; kvHeads: number; headDim: number; maxBlocks: number; blockSize: number; numSeqs: number; numBlocks: number; maxContext: number; scale: number },
    /**
     * blocks: blocks per (row, head), 1..ceil(maxContext / chunk) (default: one wave of resident blocks in all); results do not depend on it.
     * kvReady (with fuse): the caller promises that no kernel still running before this one writes posOfRow, blockTables or the cached
     * KV, so the kernel reads them (and prefetches the KV into L2) before waiting for the previous kernel.
     * stages: the K/V rows go through a cp.async ring of that many passes in shared memory (2..4), or 0: loaded
     * straight into registers (default: the launch's choice); results do not depend on it.
     */
    decode: { chunk: number; partial: DRef; counters: DRef; fuse: 0 | 1; cos?: DRef; sin?: DRef; slots?: DRef; ropeRows?: number; blocks?: number; kvReady?: 0 | 1; stages?: number },
    s?: Stream,
  ): void;
  sample(logits: DRef, temperature: DRef, topK: DRef, topP: DRef, seeds: DRef, counters: DRef, out: DRef, rows: number, vocab: number, s?: Stream): void;
  logprobs(logits: DRef, targets: DRef, out: DRef, rows: number, vocab: number, s?: Stream): void;
  denseGemm(a: DRef, w: DRef, c: DRef, m: number, n: number, k: number, s?: Stream): void;
  /** As denseGemm with an fp32 output (logits). */
  denseGemmF32(a: DRef, w: DRef, c: DRef, m: number, n: number, k: number, s?: Stream): void;
  beginCapture(s: Stream): void;
  endCapture(s: Stream): CudaGraph;
  attentionSmemLimit(): number;
}

const unwrap = (v: unknown): unknown => {
  if (Array.isArray(v) && v.length === 2 && typeof v[1] === "number") return [(v[0] as { handle: unknown }).handle, v[1]];
  if (v && typeof v === "object" && "handle" in (v as object)) return (v as { handle: unknown }).handle;
  // Plain option objects may hold buffers too (decodeAttention's decode argument).
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype)
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, unwrap(x)]));
  return v;
};

let cached: GpuOps | undefined;

export function gpuOps(): GpuOps {
  if (cached) return cached;
  const raw = native().engineCuda as Record<string, any> | undefined;
  if (!raw) throw new NativeLoadError("marlin.node has no engineCuda ops; rebuild it with `pnpm --filter @marlin/kernel build`");
  if (!raw.available) throw new NoDeviceError("the addon was built without CUDA");
  const out: Record<string, any> = {};
  for (const [k, f] of Object.entries(raw)) {
    if (typeof f !== "function" || k === "CudaGraph") continue;
    out[k] = (...args: unknown[]) => {
      try {
        return f(...args.map(unwrap));
      } catch (e) {
        throw typedError(e);
      }
    };
  }
  const endCapture = out.endCapture;
  out.endCapture = (s: Stream) => {
    const g = endCapture(s);
    return {
      launch: (st: Stream) => {
        try {
          g.launch((st as unknown as { handle: unknown }).handle);
        } catch (e) {
          throw typedError(e);
        }
      },
      destroy: () => g.destroy(),
    };
  };
  cached = out as GpuOps;
  return cached;
}
