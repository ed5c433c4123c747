/**
 * The per-op primitives of model/llama.ts on a CUDA device: fp16 rows in device buffers (or
 * [buffer, byteOffset] views), our CUDA ops for norms, RoPE + KV store, attention and SiLU, the
 * registry's prepared implementations for the linear layers, all queued on one stream.
 */
import type { DispatchedLinear } from "@marlin/core";
import { CudaEvent, type DeviceArg, type DeviceBuffer, type Stream } from "@marlin/kernel";
import { layerDims, type ModelConfig } from "../model/config.js";
import type { LayerOps } from "../model/llama.js";
import { gpuOps } from "./gpu-ops.js";

export type GpuLinear = DispatchedLinear<DeviceArg, Stream>;

/** Where a pass's rows read and write the KV cache (paged: the engine; contiguous per chunk: GPTQ). */
export interface AttentionContext {
  positions: DeviceArg;
  slots: DeviceArg;
  seqOfRow: DeviceArg;
  blockTables: DeviceArg;
  /** K and V cache of each layer (a single scratch pair may serve every layer). */
  k: (li: number) => DeviceBuffer;
  v: (li: number) => DeviceBuffer;
  numSeqs: number;
  maxBlocks: number;
  blockSize: number;
  numBlocks: number;
  /** Longest context a row may have. */
  maxContext: number;
  /** Rows of the RoPE tables (default maxContext). */
  ropeRows?: number;
  /**
   * A pure decode step (one row per sequence): attention split over context chunks, with RoPE and
   * the KV store done inside it (ropeStoreKv does nothing then).
   */
  decode?: { chunk: number; partial: DeviceBuffer; counters: DeviceBuffer; blocks?: number; kvReady?: 0 | 1; stages?: number };
}

export class GpuLayerOps implements LayerOps<DeviceArg, Stream> {
  private readonly H: number;
  private readonly qkvN: number;
  private readonly I: number;
  private readonly scale: number;

  constructor(
    private readonly c: ModelConfig,
    private readonly cos: DeviceBuffer,
    private readonly sin: DeviceBuffer,
    private readonly ctx: AttentionContext,
    private readonly s?: Stream,
  ) {
    const d = layerDims(c);
    this.H = d.H;
    this.qkvN = d.qkvN;
    this.I = d.I;
    this.scale = 1 / Math.sqrt(c.headDim);
  }

  rmsnorm(x: DeviceArg, w: DeviceArg, out: DeviceArg, rows: number): void {
    gpuOps().rmsnorm(x, w, out, rows, this.H, this.c.rmsNormEps, this.s);
  }

  addRmsnorm(h: DeviceArg, x: DeviceArg, w: DeviceArg, rows: number): void {
    gpuOps().addRmsnorm(x, h, w, rows, this.H, this.c.rmsNormEps, this.s);
  }

  ropeStoreKv(qkv: DeviceArg, rows: number, li: number): void {
    const { c, ctx } = this;
    if (ctx.decode) return; // done by the decode attention

    gpuOps().ropeStoreKv(qkv, ctx.positions, this.cos, this.sin, ctx.slots, ctx.k(li), ctx.v(li), rows, this.qkvN, c.numHeads, c.numKvHeads, c.headDim, ctx.ropeRows ?? ctx.maxContext, ctx.numBlocks * ctx.blockSize, this.s);
  }

  attention(qkv: DeviceArg, out: DeviceArg, rows: number, li: number): void {
    const { c, ctx } = this;
    const shape = {
      rows,
      qStride: this.qkvN,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      maxBlocks: ctx.maxBlocks,
      blockSize: ctx.blockSize,
      numSeqs: ctx.numSeqs,
      numBlocks: ctx.numBlocks,
      maxContext: ctx.maxContext,
      scale: this.scale,
    };
    const d = ctx.decode;
    if (d) {
      const rope = { fuse: 1 as const, cos: this.cos, sin: this.sin, slots: ctx.slots, ropeRows: ctx.ropeRows ?? ctx.maxContext };
      gpuOps().decodeAttention(qkv, ctx.k(li), ctx.v(li), ctx.blockTables, ctx.seqOfRow, ctx.positions, out, shape, { chunk: d.chunk, partial: d.partial, counters: d.counters, blocks: d.blocks, kvReady: d.kvReady, stages: d.stages, ...rope }, this.s);
    } else gpuOps().pagedAttention(qkv, ctx.k(li), ctx.v(li), ctx.blockTables, ctx.seqOfRow, ctx.positions, out, shape, this.s);
  }

  siluMul(gu: DeviceArg, out: DeviceArg, rows: number): void {
    gpuOps().siluMul(gu, out, rows, this.I, this.s);
  }

  linear(l: GpuLinear, x: DeviceArg, out: DeviceArg, rows: number): void {
    l.forward(x, out, rows, this.s);
  }
}

/** What a benchmark may leave out of a pass: the linear layers, everything else, or one op kind. */
export type SkippedOps = "linear" | "other" | "attention" | "addRmsnorm" | "siluMul";

/** Benchmark aid: the same ops with `skip` left out (outputs become meaningless). */
export function skipping<B, S>(ops: LayerOps<B, S>, skip: SkippedOps): LayerOps<B, S> {
  const none = () => {};
  if (skip === "other") return { rmsnorm: none, addRmsnorm: none, ropeStoreKv: none, attention: none, siluMul: none, linear: ops.linear.bind(ops) };
  return { ...bound(ops), [skip]: none };
}

function bound<B, S>(ops: LayerOps<B, S>): LayerOps<B, S> {
  return {
    rmsnorm: ops.rmsnorm.bind(ops),
    addRmsnorm: ops.addRmsnorm.bind(ops),
    ropeStoreKv: ops.ropeStoreKv.bind(ops),
    attention: ops.attention.bind(ops),
    siluMul: ops.siluMul.bind(ops),
    linear: ops.linear.bind(ops),
  };
}

/** GPU time per op of a pass, from CUDA event pairs around each op (eager launches; benchmarks). */
export class OpTimer {
  private readonly pool: CudaEvent[] = [];
  private used = 0;
  private readonly marks: [string, CudaEvent, CudaEvent][] = [];

  constructor(private readonly stream?: Stream) {}

  private event(): CudaEvent {
    if (this.used === this.pool.length) this.pool.push(new CudaEvent());
    return this.pool[this.used++];
  }

  /** Runs `f` between two recorded events, booked under `name`. */
  time(name: string, f: () => void): void {
    const a = this.event();
    const b = this.event();
    a.record(this.stream);
    f();
    b.record(this.stream);
    this.marks.push([name, a, b]);
  }

  /** Milliseconds per op name since the last collect (waits for the stream). */
  collect(): Record<string, number> {
    this.stream?.synchronize();
    const out: Record<string, number> = {};
    for (const [name, a, b] of this.marks) out[name] = (out[name] ?? 0) + CudaEvent.elapsedMs(a, b);
    this.marks.length = 0;
    this.used = 0;
    return out;
  }
}

/** The ops with each call timed by `t` (linear layers booked by their name, e.g. "gate_proj+up_proj"). */
export function timedOps<B, S>(ops: LayerOps<B, S>, t: OpTimer): LayerOps<B, S> {
  const b = bound(ops);
  return {
    rmsnorm: (x, w, out, rows) => t.time("rmsnorm", () => b.rmsnorm(x, w, out, rows)),
    addRmsnorm: (h, x, w, rows) => t.time("addRmsnorm", () => b.addRmsnorm(h, x, w, rows)),
    ropeStoreKv: (qkv, rows, li) => t.time("ropeStoreKv", () => b.ropeStoreKv(qkv, rows, li)),
    attention: (qkv, out, rows, li) => t.time("attention", () => b.attention(qkv, out, rows, li)),
    siluMul: (gu, out, rows) => t.time("siluMul", () => b.siluMul(gu, out, rows)),
    linear: (l, x, out, rows) => t.time(`linear ${l.name}`, () => b.linear(l, x, out, rows)),
  };
}
