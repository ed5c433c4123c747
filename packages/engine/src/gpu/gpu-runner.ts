/**
 * The GPU model runner: fp16 activations on one CUDA device, the decoder of model/llama.ts over our
 * CUDA ops (gpu-layer-ops.ts), linear layers prepared through the registry with one implementation
 * per m range. Pure decode steps are captured once per batch-size bucket into CUDA graphs and
 * replayed; every buffer a graph touches is allocated up front at a fixed address.
 */
import { InvalidArgumentError, NoDeviceError, type PlanRange } from "@marlin/core";
import { f32ToF16 } from "@marlin/format";
import { CudaEvent, DeviceBuffer, gpuTarget, hasGpu, memInfo, noGpuReason, Stream } from "@marlin/kernel";
import type { ModelRunner, PagedRows, StepBatch } from "../core/runner.js";
import { kvBytesPerToken, layerDims, type ModelConfig } from "../model/config.js";
import { describePlans, disposeLinears, FUSED_LINEARS, prepareLayerLinears } from "../model/linears.js";
import { decoderStack, type LayerBuffers, type LayerLinears, type LayerOps, type LayerParams } from "../model/llama.js";
import { ropeTables } from "../model/rope.js";
import { linearToF32, type ModelSources } from "../model/weights.js";
import type { DeviceCommunicator } from "../parallel/device-communicator.js";
import { type AttentionContext, GpuLayerOps, type OpTimer, type SkippedOps, skipping, timedOps } from "./gpu-layer-ops.js";
import { type CudaGraph, gpuOps } from "./gpu-ops.js";

export type GpuLayerWeights = LayerParams<DeviceBuffer | readonly [DeviceBuffer, number], Stream>;

export interface GpuWeights {
  /** fp16 [vocab, hidden] */
  embed: DeviceBuffer;
  /** fp32 [hidden] */
  norm: DeviceBuffer;
  /** fp16 [vocab, hidden]: the sampling head (fp32 logits out, for sampling and log-probs). */
  lmHead: DeviceBuffer;
  layers: GpuLayerWeights[];
}

export interface GpuRunnerOptions {
  blockSize?: number;
  numBlocks?: number;
  kvCacheTokens?: number;
  gpuMemoryFraction?: number;
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  cudaGraphs?: boolean;
  /** Pure decode steps use the split decode attention with RoPE + KV store fused (default true; MARLIN_DECODE_ATTENTION=0 turns it off). */
  decodeAttention?: boolean;
  /** CUDA device index (default 0): every allocation and launch of the runner goes there. */
  gpu?: number;
}

/**
 * What a tensor-parallel rank's runner does beyond a single GPU's (parallel/gpu-tp-runner.ts): its
 * config holds the rank's heads and intermediate features, its o/down linears all-reduce their
 * outputs, and these hooks make the embedding and lm_head vocabulary-parallel.
 */
export interface GpuTpRank {
  comm: DeviceCommunicator;
  /** The rank's rows of the embedding and lm_head: [vocabStart, vocabStart + vocabPerRank). */
  vocabStart: number;
  vocabPerRank: number;
}

/** Context positions per block of the decode attention (MARLIN_DECODE_CHUNK, a multiple of 16, for measuring). */
const DECODE_CHUNK = decodeChunk(process.env.MARLIN_DECODE_CHUNK);

function decodeChunk(v: string | undefined): number {
  const n = Number(v);
  return v && Number.isInteger(n) && n >= 16 && n <= 4096 && n % 16 === 0 ? n : 256;
}


/** Most rows one forward pass takes: the batched-token budget, at least one row per sequence. */
export const runnerRows = (opts: GpuRunnerOptions): number => Math.max(opts.maxNumBatchedTokens ?? 2048, opts.maxNumSeqs ?? 64);

/** Host weights (from a checkpoint) to device weights, each linear prepared through the registry for up to maxRows rows. */
export function uploadWeights(config: ModelConfig, src: ModelSources, maxRows: number, stream?: Stream, gpu = 0): { weights: GpuWeights; kernels: Record<string, string> } {
  const device = gpuTarget(gpu);
  const H = config.hiddenSize;
  const lmHead = () => {
    const h = f32ToF16(src.lmHead ? linearToF32(src.lmHead) : src.embed);
    if (h.length !== config.vocabSize * H) throw new InvalidArgumentError(`lm_head holds ${h.length} values, expected ${config.vocabSize}x${H}`);
    return h;
  };
  const linears = (l: ModelSources["layers"][number]) => prepareLayerLinears<DeviceBuffer | readonly [DeviceBuffer, number], Stream>(l, { device, maxRows, stream });
  return placeWeights(gpu, src.layers, linears, { embed: src.embed, norm: src.norm, lmHead });
}

/**
 * Places weights on device `gpu`: each layer's norms and the linears `linears` prepares for it,
 * then lm_head (made, and checked, by `lmHead`), the embedding and the final norm. What was placed
 * is freed again if any step fails.
 */
export function placeWeights<L extends { inputNorm: Float32Array; postNorm: Float32Array }>(
  gpu: number,
  layerSources: readonly L[],
  linears: (l: L) => LayerLinears<DeviceBuffer | readonly [DeviceBuffer, number], Stream>,
  host: { embed: Float32Array; norm: Float32Array; lmHead: () => Uint16Array },
): { weights: GpuWeights; kernels: Record<string, string> } {
  const layers: GpuLayerWeights[] = [];
  const owned: DeviceBuffer[] = [];
  const up = (a: Float32Array | Uint16Array) => {
    const b = DeviceBuffer.from(a, gpu);
    owned.push(b);
    return b;
  };
  try {
    for (const l of layerSources) {
      const inputNorm = up(l.inputNorm);
      const postNorm = up(l.postNorm);
      layers.push({ inputNorm, postNorm, ...linears(l) });
    }
    const lmHead = up(host.lmHead());
    const weights = { embed: up(f32ToF16(host.embed)), norm: up(host.norm), lmHead, layers };
    return { weights, kernels: linearPlans(layers) };
  } catch (e) {
    for (const l of layers) disposeLinears(l as never);
    for (const b of owned) b.free();
    throw e;
  }
}

/** Implementation per m range of each fused linear (layer 0's; every layer has the same shapes). */
export function linearPlans(layers: GpuLayerWeights[]): Record<string, string> {
  const first = layers[0];
  if (!first) return {};
  return describePlans((Object.keys(FUSED_LINEARS) as (keyof typeof FUSED_LINEARS)[]).map((s) => [FUSED_LINEARS[s].join("+"), first[s].plan] as [string, readonly PlanRange[]]));
}

/** Byte equality, 4 bytes at a time where both views allow. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.byteLength;
  if (n !== b.byteLength) return false;
  if (n % 4 === 0 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const x = new Int32Array(a.buffer, a.byteOffset, n / 4);
    const y = new Int32Array(b.buffer, b.byteOffset, n / 4);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}


/** Where the last execute() spent its time (milliseconds; filled while `profile` is on). */
export interface StepTimings {
  /** Host: building and uploading the step's inputs. */
  prepMs: number;
  /** Device: the forward pass, lm_head and sampling (CUDA events around the graph replay or the launches). */
  gpuMs: number;
  /** Host: launching (graph replay or the op launches). */
  launchMs: number;
  /** Host: waiting for the stream. */
  syncMs: number;
  /** Host: downloading the sampled ids. */
  downloadMs: number;
  /** Host: the whole execute(). */
  totalMs: number;
  /** Whether a CUDA graph ran the step. */
  graph: boolean;
}

/**
 * Benchmark aid: leave out the linear layers (lm_head included), every other op of the forward
 * pass, or one kind of op (what it adds to a graph replay's time).
 */
export type ProfileSkip = SkippedOps | undefined;

const GRAPH_BUCKETS = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256];

export class GpuModelRunner implements ModelRunner {
  readonly device = "cuda" as const;
  readonly config: ModelConfig;
  readonly weights: GpuWeights;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly maxModelLen: number;
  readonly maxRows: number;
  readonly maxSeqs: number;
  readonly maxBlocksPerSeq: number;
  readonly stream: Stream;
  /** CUDA device index. */
  readonly gpu: number;
  /** Set on a tensor-parallel rank. */
  readonly tp?: GpuTpRank;
  /** Registry choice per fused linear layer (implementation per m range). */
  readonly kernels: Record<string, string>;
  useGraphs: boolean;
  graphFailure?: string;
  private readonly k: DeviceBuffer[] = [];
  private readonly v: DeviceBuffer[] = [];
  private readonly bufs: Record<string, DeviceBuffer> = {};
  private logits: DeviceBuffer;
  private logitRows: number;
  /** Tensor-parallel: this rank's logits [rows, vocabPerRank] and every rank's, gathered [tp][rows][vocabPerRank]. */
  private logitsPart?: DeviceBuffer;
  private logitsAll?: DeviceBuffer;
  private readonly graphs = new Map<number, CudaGraph>();
  private readonly warmed = new Set<number>();
  /** Record per-step timings in lastTimings (two CUDA events a step). */
  profile = false;
  readonly lastTimings: StepTimings = { prepMs: 0, gpuMs: 0, launchMs: 0, syncMs: 0, downloadMs: 0, totalMs: 0, graph: false };
  private events?: [CudaEvent, CudaEvent];
  private skip: ProfileSkip;
  /** Benchmark aid: when set, steps run eagerly (no graphs) with every op timed (see OpTimer). */
  opTimer?: OpTimer;
  private readonly uploaded = new Map<string, Uint8Array>();
  private readonly decode?: AttentionContext["decode"];

  static async create(config: ModelConfig, sources: ModelSources, opts: GpuRunnerOptions = {}): Promise<GpuModelRunner> {
    if (!hasGpu()) throw new NoDeviceError(`the GPU runner needs a CUDA device: ${noGpuReason()}`);
    const stream = new Stream(opts.gpu ?? 0);
    try {
      const { weights, kernels } = uploadWeights(config, sources, runnerRows(opts), stream, opts.gpu ?? 0);
      return new GpuModelRunner(config, weights, { ...opts }, stream, kernels);
    } catch (e) {
      stream.destroy();
      throw e;
    }
  }

  constructor(config: ModelConfig, weights: GpuWeights, opts: GpuRunnerOptions, stream: Stream, kernels: Record<string, string> = {}, tp?: GpuTpRank) {
    this.config = config;
    this.weights = weights;
    this.stream = stream;
    this.kernels = kernels;
    this.gpu = opts.gpu ?? 0;
    this.tp = tp;
    const gpu = this.gpu;
    this.blockSize = opts.blockSize ?? 16;
    this.maxModelLen = Math.min(opts.maxModelLen ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings);
    this.maxSeqs = opts.maxNumSeqs ?? 64;
    this.maxRows = runnerRows(opts);
    this.maxBlocksPerSeq = Math.ceil(this.maxModelLen / this.blockSize);
    // a collective that waits on the host (the host-staged communicator) cannot sit in a graph
    this.useGraphs = (opts.cudaGraphs ?? true) && (tp?.comm.capturable ?? true);
    const c = config;
    const { H, qd, kvd, qkvN, I } = layerDims(c);
    const R = this.maxRows;
    const S = this.maxSeqs;
    const alloc = (name: string, bytes: number) => {
      this.bufs[name] = DeviceBuffer.alloc(Math.max(16, bytes), gpu);
    };
    alloc("h", R * H * 2);
    alloc("x", R * H * 2);
    alloc("qkv", R * qkvN * 2);
    alloc("attn", R * qd * 2);
    alloc("gu", R * 2 * I * 2);
    alloc("act", R * I * 2);
    alloc("sel", R * H * 2);
    for (const n of ["tokens", "positions", "slots", "seqOfRow", "rowIndex", "targets"]) alloc(n, R * 4);
    alloc("lp", R * 4);
    alloc("blockTables", Math.max(S, R) * this.maxBlocksPerSeq * 4);
    for (const n of ["temperature", "topK", "topP", "counters", "out"]) alloc(n, S * 4);
    alloc("seeds", S * 8);
    this.logitRows = S;
    this.logits = DeviceBuffer.alloc(S * c.vocabSize * 4, gpu);
    this.allocTpLogits(S);
    if ((opts.decodeAttention ?? process.env.MARLIN_DECODE_ATTENTION !== "0") && [64, 128, 256].includes(c.headDim)) {
      const splits = Math.ceil(this.maxModelLen / DECODE_CHUNK);
      const counters = DeviceBuffer.alloc(S * c.numHeads * 4, gpu);
      counters.fillBytes(0);
      // MARLIN_DECODE_BLOCKS=chunks: one block per chunk of the longest context (the grid before
      // blocks were bounded; benchmarks compare the two in one run).
      const blocks = process.env.MARLIN_DECODE_BLOCKS === "chunks" ? splits : undefined;
      // kvReady: a decode step's inputs are uploaded by synchronous copies before it, and its
      // attention reads only cache rows of earlier steps (MARLIN_KV_READY=0 turns it off, for measuring).
      const kvReady = process.env.MARLIN_KV_READY === "0" ? 0 : 1;
      // MARLIN_DECODE_STAGES=0|2|3|4: the K/V load path (0: direct loads, the kernel before the ring), for measuring.
      const stages = process.env.MARLIN_DECODE_STAGES ? Number(process.env.MARLIN_DECODE_STAGES) : undefined;
      this.decode = { chunk: DECODE_CHUNK, partial: DeviceBuffer.alloc(S * c.numHeads * splits * (c.headDim + 2) * 4, gpu), counters, blocks, kvReady, stages };
      this.bufs.decodePartial = this.decode.partial;
      this.bufs.decodeCounters = counters;
    }
    const t = ropeTables(c, this.maxModelLen);
    this.bufs.cos = DeviceBuffer.from(t.cos, gpu);
    this.bufs.sin = DeviceBuffer.from(t.sin, gpu);
    // KV cache: what was asked, else a fraction of the free memory.
    const perBlock = this.blockSize * kvBytesPerToken(c, 2);
    let blocks = opts.numBlocks ?? (opts.kvCacheTokens ? Math.ceil(opts.kvCacheTokens / this.blockSize) : 0);
    if (!blocks) blocks = Math.floor((memInfo(gpu).free * (opts.gpuMemoryFraction ?? 0.8)) / perBlock);
    if (blocks < this.maxBlocksPerSeq) throw new InvalidArgumentError(`only ${blocks} KV blocks fit; one sequence of ${this.maxModelLen} needs ${this.maxBlocksPerSeq}`);
    this.numBlocks = blocks;
    for (let i = 0; i < c.numLayers; i++) {
      this.k.push(DeviceBuffer.alloc(blocks * this.blockSize * kvd * 2, gpu));
      this.v.push(DeviceBuffer.alloc(blocks * this.blockSize * kvd * 2, gpu));
    }
  }

  get maxBatchRows(): number {
    return this.maxRows;
  }

  /** Bytes of weights one decode step streams (linear layers at m = 1 and lm_head; embedding rows aside). */
  get weightBytes(): number {
    let b = this.weights.lmHead.byteLength;
    for (const l of this.weights.layers) b += l.qkv.weightBytes(1) + l.o.weightBytes(1) + l.gateUp.weightBytes(1) + l.down.weightBytes(1);
    return b;
  }

  /** Benchmark aid (outputs become meaningless): runs and captures the forward pass without the linear layers or without the other ops. */
  setProfileSkip(mode: ProfileSkip): void {
    if (mode === this.skip) return;
    this.stream.synchronize();
    this.skip = mode;
    for (const g of this.graphs.values()) g.destroy();
    this.graphs.clear();
    this.warmed.clear();
  }

  /**
   * Host -> device copy of a step input, skipped when the bytes equal the last ones uploaded to
   * that buffer (in steady decode the block tables, row maps and sampling parameters rarely
   * change, and each synchronous copy costs several microseconds). Only upload() writes these
   * buffers, so the host copy stays what the device holds.
   */
  private upload(name: string, data: ArrayBufferView): void {
    if (!data.byteLength) return;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const last = this.uploaded.get(name);
    if (last && last.byteLength === bytes.byteLength && sameBytes(last, bytes)) return;
    this.bufs[name].upload(data);
    this.uploaded.set(name, bytes.slice());
  }

  /** Uploads rows and block tables (tables re-laid to the fixed width maxBlocksPerSeq). */
  private uploadRows(rows: PagedRows, padTo: number): number {
    const T = rows.tokens.length;
    const P = Math.max(T, padTo);
    if (P > this.maxRows) throw new InvalidArgumentError(`${P} rows exceed the runner's ${this.maxRows}`);
    const pad = (a: Int32Array, fill: (i: number) => number) => {
      if (P === T) return a;
      const out = new Int32Array(P);
      out.set(a);
      for (let i = T; i < P; i++) out[i] = fill(i);
      return out;
    };
    const numSeqs = rows.blockTables.length / rows.maxBlocks;
    this.upload("tokens", pad(rows.tokens, () => 0));
    this.upload("positions", pad(rows.positions, () => 0));
    this.upload("slots", pad(rows.slots, () => -1));
    // Padded rows attend to position 0 of a table row of zeros (block 0): harmless, discarded.
    this.upload("seqOfRow", pad(rows.seqOfRow, (i) => numSeqs + (i - T)));
    const W = this.maxBlocksPerSeq;
    const tables = new Int32Array((numSeqs + (P - T)) * W);
    for (let s = 0; s < numSeqs; s++) tables.set(rows.blockTables.subarray(s * rows.maxBlocks, (s + 1) * rows.maxBlocks), s * W);
    this.upload("blockTables", tables);
    return P;
  }

  /** The layer ops of a pass over the uploaded rows of `numSeqs` sequences (`decode`: one row per sequence). */
  private layerOps(numSeqs: number, decode: boolean): LayerOps<DeviceBuffer | readonly [DeviceBuffer, number], Stream> {
    const b = this.bufs;
    const ctx: AttentionContext = {
      positions: b.positions,
      slots: b.slots,
      seqOfRow: b.seqOfRow,
      blockTables: b.blockTables,
      k: (li) => this.k[li],
      v: (li) => this.v[li],
      numSeqs,
      maxBlocks: this.maxBlocksPerSeq,
      blockSize: this.blockSize,
      numBlocks: this.numBlocks,
      maxContext: this.maxModelLen,
      decode: decode ? this.decode : undefined,
    };
    const ops = new GpuLayerOps(this.config, b.cos, b.sin, ctx, this.stream);
    const sk = this.skip ? skipping(ops, this.skip) : ops;
    return this.opTimer ? timedOps(sk, this.opTimer) : sk;
  }

  /** The forward pass over `T` uploaded rows, leaving the final normed hidden state in x. */
  private forwardRows(T: number, numSeqs: number, decode = false): void {
    const b = this.bufs;
    const c = this.config;
    const tp = this.tp;
    if (!tp) {
      if (this.skip !== "other") gpuOps().embedding(b.tokens, this.weights.embed, b.h, T, c.hiddenSize, c.vocabSize, this.stream);
    } else {
      // vocabulary-parallel: each rank has its rows (zeros for other ids); the sum has one non-zero term, so it is exact
      gpuOps().embedding(b.tokens, this.weights.embed, b.h, T, c.hiddenSize, tp.vocabPerRank, this.stream, tp.vocabStart);
      tp.comm.allReduceSum(b.h, T * c.hiddenSize, "float16");
    }
    const buf: LayerBuffers<DeviceBuffer> = { h: b.h, x: b.x, qkv: b.qkv, attn: b.attn, gu: b.gu, act: b.act };
    decoderStack(this.layerOps(numSeqs, decode && T <= this.maxSeqs), this.weights.layers, this.weights.norm, buf, T);
  }

  /**
   * Gathers `n` rows (indices in rowIndex) and runs lm_head into the logits buffer. With `allRows`
   * (a decode step: row i is sequence i) lm_head reads x directly, without the gather.
   */
  private head(n: number, allRows = false): void {
    const c = this.config;
    this.ensureLogits(n);
    if (!allRows && this.skip !== "other") gpuOps().gatherRows(this.bufs.x, this.bufs.rowIndex, this.bufs.sel, n, c.hiddenSize, this.stream);
    const x = allRows ? this.bufs.x : this.bufs.sel;
    const tp = this.tp;
    if (!tp) {
      if (this.skip !== "linear") gpuOps().denseGemmF32(x, this.weights.lmHead, this.logits, n, c.vocabSize, c.hiddenSize, this.stream);
      return;
    }
    // vocabulary-parallel: every rank's [n, per] slice is gathered into [tp][n][per], then rank 0 lays the slices side by side
    const per = tp.vocabPerRank;
    const V = c.vocabSize;
    gpuOps().denseGemmF32(x, this.weights.lmHead, this.logitsPart!, n, per, c.hiddenSize, this.stream);
    tp.comm.allGather(this.logitsPart!, this.logitsAll!, n * per, "float32");
    if (tp.comm.rank !== 0) return;
    for (let r = 0; r < tp.comm.worldSize; r++) {
      const w = Math.min(per, V - r * per);
      if (w > 0) gpuOps().copy2d([this.logits, r * per * 4], V * 4, [this.logitsAll!, r * n * per * 4], per * 4, w * 4, n, this.stream);
    }
  }

  private allocTpLogits(rows: number): void {
    if (!this.tp) return;
    this.logitsPart?.free();
    this.logitsAll?.free();
    const per = this.tp.vocabPerRank;
    this.logitsPart = DeviceBuffer.alloc(rows * per * 4, this.gpu);
    this.logitsAll = DeviceBuffer.alloc(this.tp.comm.worldSize * rows * per * 4, this.gpu);
  }

  /** Rank 0 of a tensor-parallel group (or a single GPU) samples; the other ranks' logits are dropped. */
  private get samples(): boolean {
    return (this.tp?.comm.rank ?? 0) === 0;
  }

  private ensureLogits(n: number): void {
    if (n <= this.logitRows) return;
    this.stream.synchronize();
    this.logits.free();
    this.logitRows = n;
    this.logits = DeviceBuffer.alloc(n * this.config.vocabSize * 4, this.gpu);
    this.allocTpLogits(n);
    for (const g of this.graphs.values()) g.destroy();
    this.graphs.clear();
    this.warmed.clear();
  }

  private sampleStep(n: number): void {
    const b = this.bufs;
    if (this.skip === "other" || !this.samples) return;
    gpuOps().sample(this.logits, b.temperature, b.topK, b.topP, b.seeds, b.counters, b.out, n, this.config.vocabSize, this.stream);
  }

  /** The whole decode step for `bucket` rows: what a CUDA graph captures. */
  private decodeStep(bucket: number, numSeqs: number): void {
    this.forwardRows(bucket, numSeqs, true);
    this.head(bucket, true);
    this.sampleStep(bucket);
  }

  execute(batch: StepBatch): Int32Array {
    const t0 = this.profile ? performance.now() : 0;
    const T = batch.tokens.length;
    const S = batch.sampleRows.length;
    const out = new Int32Array(S);
    if (T === 0) return out;
    if (S > this.maxSeqs) throw new InvalidArgumentError(`${S} sequences exceed the runner's ${this.maxSeqs}`);
    const numSeqs = batch.blockTables.length / batch.maxBlocks;
    const pureDecode = S === T && numSeqs === T;
    const bucket = pureDecode && this.useGraphs && !this.opTimer ? GRAPH_BUCKETS.find((x) => x >= T && x <= this.maxSeqs) : undefined;
    const rows = this.uploadRows(batch, bucket ?? 0);
    const n = bucket ?? S;
    const padI = (a: Int32Array, fill: number) => {
      const o = new Int32Array(n).fill(fill);
      o.set(a);
      return o;
    };
    const padF = (a: Float32Array, fill: number) => {
      const o = new Float32Array(n).fill(fill);
      o.set(a);
      return o;
    };
    const sp = batch.sampling;
    this.upload("rowIndex", bucket ? Int32Array.from({ length: n }, (_, i) => i) : batch.sampleRows);
    this.upload("temperature", padF(sp.temperature, 0));
    this.upload("topK", padI(sp.topK, 0));
    this.upload("topP", padF(sp.topP, 1));
    const seeds = new Uint32Array(2 * n);
    seeds.set(sp.seeds);
    this.upload("seeds", seeds);
    this.upload("counters", padI(sp.counters, 0));
    const prof = this.profile;
    const t1 = prof ? performance.now() : 0;
    if (prof) {
      this.events ??= [new CudaEvent(), new CudaEvent()];
      this.events[0].record(this.stream);
    }
    const graph = bucket !== undefined && this.graphs.has(bucket);
    if (bucket !== undefined) this.runGraph(bucket, numSeqs + (rows - T));
    else {
      this.forwardRows(T, numSeqs, pureDecode);
      if (S > 0) {
        this.head(S);
        this.sampleStep(S);
      }
    }
    if (prof) this.events?.[1].record(this.stream);
    const t2 = prof ? performance.now() : 0;
    this.stream.synchronize();
    const t3 = prof ? performance.now() : 0;
    if (S > 0 && this.samples) {
      const got = new Int32Array(n);
      this.bufs.out.download(got);
      out.set(got.subarray(0, S));
    }
    if (prof && this.events) {
      const t4 = performance.now();
      Object.assign(this.lastTimings, {
        prepMs: t1 - t0,
        gpuMs: CudaEvent.elapsedMs(this.events[0], this.events[1]),
        launchMs: t2 - t1,
        syncMs: t3 - t2,
        downloadMs: t4 - t3,
        totalMs: t4 - t0,
        graph,
      });
    }
    return out;
  }

  /** Replays (capturing on second use: the first run warms cuBLAS and the workspace) a decode graph. */
  private runGraph(bucket: number, numSeqs: number): void {
    const g = this.graphs.get(bucket);
    if (g) {
      g.launch(this.stream);
      return;
    }
    if (!this.warmed.has(bucket)) {
      this.warmed.add(bucket);
      this.decodeStep(bucket, numSeqs);
      return;
    }
    const ops = gpuOps();
    this.stream.synchronize();
    ops.beginCapture(this.stream);
    try {
      this.decodeStep(bucket, this.maxSeqs);
    } catch (e) {
      try {
        ops.endCapture(this.stream).destroy();
      } catch {
        // the capture is already invalid
      }
      this.useGraphs = false;
      this.graphFailure = (e as Error).message;
      this.decodeStep(bucket, numSeqs);
      return;
    }
    let graph: CudaGraph;
    try {
      graph = ops.endCapture(this.stream);
    } catch (e) {
      this.useGraphs = false;
      this.graphFailure = (e as Error).message;
      this.decodeStep(bucket, numSeqs);
      return;
    }
    this.graphs.set(bucket, graph);
    graph.launch(this.stream);
  }

  score(rows: PagedRows, logitRows: Int32Array, targets: Int32Array): Float64Array {
    const T = rows.tokens.length;
    const numSeqs = rows.blockTables.length / rows.maxBlocks;
    this.uploadRows(rows, 0);
    this.forwardRows(T, numSeqs);
    const n = logitRows.length;
    this.upload("rowIndex", logitRows);
    this.upload("targets", targets);
    this.head(n);
    if (!this.samples) {
      this.stream.synchronize();
      return new Float64Array(n);
    }
    gpuOps().logprobs(this.logits, this.bufs.targets, this.bufs.lp, n, this.config.vocabSize, this.stream);
    this.stream.synchronize();
    const lp = new Float32Array(n);
    this.bufs.lp.download(lp);
    return Float64Array.from(lp);
  }

  dispose(): void {
    this.events = undefined;
    for (const g of this.graphs.values()) g.destroy();
    this.graphs.clear();
    for (const b of [...Object.values(this.bufs), ...this.k, ...this.v, this.logits]) b.free();
    this.logitsPart?.free();
    this.logitsAll?.free();
    disposeGpuWeights(this.weights);
    this.stream.destroy();
  }
}

/** Frees uploaded weights: embedding, norms, lm_head and every layer's prepared linears. */
export function disposeGpuWeights(W: GpuWeights): void {
  W.embed.free();
  W.norm.free();
  W.lmHead.free();
  for (const l of W.layers) {
    (l.inputNorm as DeviceBuffer).free();
    (l.postNorm as DeviceBuffer).free();
    disposeLinears(l as never);
  }
}

