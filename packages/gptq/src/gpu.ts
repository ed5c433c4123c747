/**
 * GPTQ on the GPU (native/src/gptq): the Hessian X^T X on tensor cores through cuBLAS, the factor
 * U through cuSOLVER in fp64 (both libraries loaded at run time), the column loop in fp32 with
 * in-block error feedback in shared memory and the lazy trailing update as a cuBLAS GEMM. Same
 * options and result type as gptqQuantize (the float64 reference): the range search (clip, score
 * "diag"; "full" is CPU only) runs in the kernels, and so does SparseGPT's 2:4 mask selection
 * (per quad, in the column loop); a magnitude mask is chosen on the host and held by the loop.
 */
import { InvalidArgumentError, NoDeviceError, ShapeError } from "@marlin/core";
import { f32ToF16 } from "@marlin/format";
import { DeviceBuffer, hasGpu, native, typedError } from "@marlin/kernel";
import { NotPositiveDefiniteError } from "./errors.js";
import { type GptqOptions, resolveGptqOptions } from "./gptq.js";
import { groupCount, type QuantResult, toOriginalOrder } from "./result.js";
import { magnitudeMask24 } from "./sparsity.js";

/** sparseMode of the native loop. */
const SPARSE_MODE = { none: 0, sparsegpt: 1, magnitude: 2 } as const;

interface GptqNative {
  status(): { available: boolean; reason?: string };
  hessianAdd(h: unknown, x: unknown, xByteOffset: number, tokens: number, k: number, alpha: number, beta: number, stream?: unknown): void;
  diag(h: unknown, k: number): Float32Array;
  factor(h: unknown, k: number, perm: Int32Array, damp: number, u: unknown, stream?: unknown): number;
  params(
    w: unknown,
    k: number,
    n: number,
    r0: number,
    r1: number,
    bits: number,
    sym: boolean,
    scales: unknown,
    zeros: unknown,
    g: number,
    rowWeights: unknown,
    rowStride: number,
    rowInvSq: boolean,
    clipSteps: number,
    clipGrid: number,
    stream?: unknown,
  ): void;
  loop(
    w: unknown,
    u: unknown,
    k: number,
    n: number,
    bits: number,
    sym: boolean,
    groupSize: number,
    dynamic: boolean,
    gperm: Int32Array,
    scales: unknown,
    zeros: unknown,
    q: unknown,
    blockSize: number,
    mask: unknown,
    sparseMode: number,
    clipSteps: number,
    clipGrid: number,
    stream?: unknown,
  ): number;
}

function raw(): GptqNative | undefined {
  try {
    return native().gptq as GptqNative | undefined;
  } catch {
    return undefined;
  }
}

/** Whether the GPU path can run here, and why not. */
export function gptqGpuStatus(): { available: boolean; reason?: string } {
  const g = raw();
  if (!g) return { available: false, reason: "marlin.node has no gptq module (not built, or built before native/src/gptq existed): rebuild @marlin/kernel" };
  if (!hasGpu()) return { available: false, reason: "no CUDA device" };
  return g.status();
}

function api(): GptqNative {
  const s = gptqGpuStatus();
  if (!s.available) throw new NoDeviceError(`GPTQ on the GPU is not available: ${s.reason}`);
  const g = raw()!;
  // Addon errors become typed @marlin/core errors.
  return new Proxy(g, {
    get(target, prop) {
      const f = (target as unknown as Record<string | symbol, unknown>)[prop];
      if (typeof f !== "function") return f;
      return (...a: unknown[]) => {
        try {
          return f(...a);
        } catch (e) {
          throw typedError(e);
        }
      };
    },
  });
}

/**
 * H = 2/N * sum x x^T on the device (fp32 [k, k]), a running mean over batches of fp16 token rows
 * [tokens, k] already on the device (e.g. a layer's input captured by a GPU forward).
 */
export class HessianGpu {
  readonly k: number;
  readonly buffer: DeviceBuffer;
  private n = 0;

  constructor(k: number, device = 0) {
    if (!Number.isInteger(k) || k <= 0) throw new InvalidArgumentError(`HessianGpu: k must be a positive integer, got ${k}`);
    api();
    this.k = k;
    this.buffer = DeviceBuffer.alloc(k * k * 4, device);
    this.buffer.fillBytes(0);
  }

  get count(): number {
    return this.n;
  }

  /** Adds fp16 rows x [tokens, k] at `byteOffset` of a device buffer. */
  add(x: DeviceBuffer, tokens: number, byteOffset = 0): void {
    if (!Number.isInteger(tokens) || tokens <= 0) throw new ShapeError(`HessianGpu.add: tokens must be a positive integer, got ${tokens}`);
    const total = this.n + tokens;
    api().hessianAdd(this.buffer.handle, x.handle, byteOffset, tokens, this.k, 2 / total, this.n / total);
    this.n = total;
  }

  /** Adds host rows (converted to fp16 and uploaded): for tests and CPU-captured inputs. */
  addHost(x: Float32Array | Float64Array, tokens = x.length / this.k): void {
    if (!Number.isInteger(tokens) || x.length < tokens * this.k) throw new ShapeError(`HessianGpu.addHost: ${x.length} values is not [tokens, ${this.k}]`);
    for (let i = 0; i < tokens * this.k; i++) if (!Number.isFinite(x[i])) throw new InvalidArgumentError(`HessianGpu.addHost: input value ${i} is ${x[i]}`);
    const buf = DeviceBuffer.from(f32ToF16(Float32Array.from(x.subarray(0, tokens * this.k))), this.buffer.device);
    try {
      this.add(buf, tokens);
    } finally {
      buf.free();
    }
  }

  /** H on the host (float64), waiting for queued work. */
  download(): Float64Array {
    return Float64Array.from(this.buffer.download(new Float32Array(this.k * this.k)));
  }

  free(): void {
    this.buffer.free();
  }
}

/**
 * GPTQ of W [k, n] (host, k inputs x n outputs) against H [k, k]: a host array, a HessianGpu, or
 * an fp32 device buffer. Same result as gptqQuantize up to fp32 rounding (a few codes may differ).
 */
export function gptqQuantizeGpu(
  w: Float32Array | Float64Array,
  h: Float64Array | Float32Array | HessianGpu | DeviceBuffer,
  options: GptqOptions = {},
  /** Seconds added per step: host (checks, permutation, uploads), factor, loop, download. */
  timings?: Record<string, number>,
): QuantResult {
  const g = api();
  let mark = performance.now();
  const lap = (step: string) => {
    const now = performance.now();
    if (timings) timings[step] = (timings[step] ?? 0) + (now - mark) / 1000;
    mark = now;
  };
  const hIsHost = h instanceof Float64Array || h instanceof Float32Array;
  const k = h instanceof HessianGpu ? h.k : hIsHost ? Math.round(Math.sqrt(h.length)) : Math.round(Math.sqrt(h.byteLength / 4));
  if (k <= 0 || (hIsHost && k * k !== h.length)) throw new ShapeError(`H must be square, got ${hIsHost ? h.length : "a buffer of other size"}`);
  const n = w.length / k;
  const o = resolveGptqOptions(options, k, n);
  if (o.clip?.score === "full") throw new InvalidArgumentError('clip score "full" is not implemented on the GPU path (use "diag", the default, or gptqQuantize)');
  // The range search as quantizer.ts findGroupParams runs it: steps shrink the range by 1 / grid each.
  const clipSteps = o.clip ? Math.max(1, Math.floor(o.clip.maxShrink * o.clip.grid)) : 0;
  const clipGrid = o.clip?.grid ?? 100;
  if (o.blockSize > 128) throw new InvalidArgumentError(`blockSize ${o.blockSize} exceeds the GPU path's 128`);
  if (w.length !== k * n) throw new ShapeError(`weights: expected [${k}, ${n}]`);
  for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) throw new InvalidArgumentError(`weights: value ${i} is ${w[i]}`);
  const gs = o.groupSize;
  const groups = groupCount(k, gs);
  const owned: DeviceBuffer[] = [];
  const alloc = (bytes: number) => {
    const b = DeviceBuffer.alloc(bytes);
    owned.push(b);
    return b;
  };
  try {
    let hBuf: DeviceBuffer;
    let diag: ArrayLike<number>;
    if (hIsHost) {
      for (let i = 0; i < h.length; i++) if (!Number.isFinite(h[i])) throw new InvalidArgumentError(`H: value ${i} is ${h[i]}`);
      const h32 = Float32Array.from(h);
      hBuf = alloc(k * k * 4);
      hBuf.upload(h32);
      // The act-order sort uses the diagonal as given (float64 ties broken like the reference).
      diag = Float64Array.from({ length: k }, (_, i) => h[i * k + i]);
    } else {
      hBuf = h instanceof HessianGpu ? h.buffer : h;
      diag = g.diag(hBuf.handle, k);
    }
    // Dead inputs (never active): any weight is as good as another; zero them (as the reference).
    // The caller's weights are copied only when they must change (a 7B MLP layer is 180 MB).
    let W = w instanceof Float32Array ? w : new Float32Array(w);
    const d = Float64Array.from(diag);
    let dead = 0;
    for (let i = 0; i < k; i++) {
      if (!Number.isFinite(d[i])) throw new InvalidArgumentError(`H: diagonal ${i} is ${d[i]}`);
      if (d[i] === 0) {
        if (W === w) W = W.slice();
        d[i] = 1;
        W.fill(0, i * n, (i + 1) * n);
        dead++;
      }
    }
    // Magnitude 2:4: the mask of the original weights (host), pruned entries zeroed; the loop holds it.
    let hostMask: Uint8Array | undefined;
    if (o.prune === "magnitude") {
      hostMask = magnitudeMask24(W, k, n);
      if (W === w) W = W.slice();
      for (let i = 0; i < k * n; i++) if (hostMask[i]) W[i] = 0;
    }
    const idx = Array.from({ length: k }, (_, i) => i);
    if (o.actOrder) idx.sort((a, b) => d[b] - d[a] || a - b);
    const perm = Int32Array.from(idx);
    let meanDiag = 0;
    for (let i = 0; i < k; i++) meanDiag += d[i];
    meanDiag /= k;
    // Damping scales with mean(diag H): where that is not positive no damping helps (the CPU path
    // finds the same through its Cholesky); say so before the device work.
    if (!(meanDiag > 0)) throw new NotPositiveDefiniteError(Math.max(1, d.findIndex((x) => !(x > 0)) + 1), "Hessian");

    const u = alloc(k * k * 4);
    lap("host");
    let percDamp = o.percDamp;
    for (let attempt = 0; ; attempt++) {
      const pivot = g.factor(hBuf.handle, k, perm, percDamp * meanDiag, u.handle);
      if (pivot === 0) break;
      if (attempt >= o.dampRetries) throw new NotPositiveDefiniteError(pivot, "damped Hessian");
      percDamp = percDamp > 0 ? percDamp * 10 : 0.01;
    }
    lap("factor");

    const scales = alloc(groups * n * 4);
    const zeros = alloc(groups * n * 4);
    const useStatic = gs > 0 && o.staticGroups;
    if (useStatic) {
      // Params on the unpermuted rows, fixed before GPTQ runs.
      // The search (when on) weighs rows by diag(H) there, as the reference's hessianScorer.
      const wu = alloc(k * n * 4);
      wu.upload(W);
      let rw: DeviceBuffer | null = null;
      if (clipSteps > 0) {
        rw = alloc(k * 4);
        rw.upload(Float32Array.from(d));
      }
      for (let gi = 0; gi < groups; gi++)
        g.params(wu.handle, k, n, gi * gs, Math.min(k, (gi + 1) * gs), o.bits, o.symmetric, scales.handle, zeros.handle, gi, rw?.handle ?? null, 1, false, clipSteps, clipGrid);
    }
    let Wp = W;
    if (o.actOrder) {
      Wp = new Float32Array(k * n);
      for (let i = 0; i < k; i++) Wp.set(W.subarray(perm[i] * n, (perm[i] + 1) * n), i * n);
    }
    const wd = alloc(k * n * 4);
    wd.upload(Wp);
    // Per-channel: rows weigh 1 / U_rr^2 in the search (U's diagonal: stride k + 1).
    if (gs <= 0) g.params(wd.handle, k, n, 0, k, o.bits, o.symmetric, scales.handle, zeros.handle, 0, clipSteps > 0 ? u.handle : null, k + 1, true, clipSteps, clipGrid);
    const gPerm = new Int32Array(k);
    for (let i = 0; i < k; i++) gPerm[i] = gs <= 0 ? 0 : useStatic ? Math.floor(perm[i] / gs) : Math.floor(i / gs);
    const qd = alloc(k * n);
    qd.fillBytes(0xff); // poison: every code is written by the loop
    let maskBuf: DeviceBuffer | null = null;
    if (o.prune) {
      maskBuf = alloc(k * n);
      if (hostMask) maskBuf.upload(hostMask);
      else maskBuf.fillBytes(0xff); // poison: SparseGPT writes every entry
    }
    lap("host");
    const loss = g.loop(
      wd.handle,
      u.handle,
      k,
      n,
      o.bits,
      o.symmetric,
      gs,
      gs > 0 && !useStatic,
      gPerm,
      scales.handle,
      zeros.handle,
      qd.handle,
      o.blockSize,
      maskBuf?.handle ?? null,
      SPARSE_MODE[o.prune ?? "none"],
      clipSteps,
      clipGrid,
    );

    lap("loop");
    const qPerm = qd.download(new Uint8Array(k * n));
    const s32 = scales.download(new Float32Array(groups * n));
    const z32 = zeros.download(new Float32Array(groups * n));
    const mask = hostMask ?? maskBuf?.download(new Uint8Array(k * n));
    // Without act-order the quantization order is the original one: nothing to un-permute.
    const { q, gIdx } = o.actOrder ? toOriginalOrder(qPerm, gPerm, k, n, perm) : { q: qPerm, gIdx: gPerm };
    lap("download");
    return {
      k,
      n,
      bits: o.bits,
      groupSize: gs,
      symmetric: o.symmetric,
      actOrder: o.actOrder,
      staticGroups: useStatic,
      q,
      scales: s32,
      zeros: Uint8Array.from(z32),
      gIdx,
      perm: o.actOrder ? perm : undefined,
      lossEstimate: loss,
      percDamp,
      deadInputs: dead,
      ...(o.prune ? { sparsity: "2:4" as const, pruneMethod: o.prune, mask } : {}),
    };
  } finally {
    for (const b of owned) b.free();
  }
}
