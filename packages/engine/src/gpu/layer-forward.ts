/**
 * One decoder layer at a time on the GPU, over plain (unpaged) batches of sequences: what a GPTQ
 * pass runs. The layer's weights are held dense in fp16 (a linear can be replaced, e.g. by its
 * dequantized values once quantized), hidden states are fp16 [tokens, hidden] device buffers, and a
 * hook sees each linear layer's input as a view of device memory.
 *
 * Sequences are processed in chunks of whole sequences (causal attention within each, positions
 * from 0), so the scratch memory (q/k/v, the MLP intermediate, the chunk's K/V) is bounded by the
 * chunk, not the batch. The math is model/llama.ts's decoder layer (what the engine's runners
 * run), over GpuLayerOps; the linears are prepared through the registry (dense fp16: GPTQ replaces
 * a linear's weight by its dequantized values once quantized, and the fused linear is prepared anew).
 *
 * Every op is queued on the device's default stream, like DeviceBuffer copies and @marlin/gptq's
 * HessianGpu, so a hook may queue work on the views it is given without any synchronization.
 */
import { InvalidArgumentError, NoDeviceError, ShapeError } from "@marlin/core";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { type DeviceArg, DeviceBuffer, gpuTarget, hasGpu, noGpuReason, type Stream } from "@marlin/kernel";
import { layerDims, type ModelConfig } from "../model/config.js";
import { FUSED_LINEARS, prepareSource } from "../model/linears.js";
import { attentionBlock, attentionOutput, type LayerBuffers, type LayerParams, type LayerPass, mlpBlock, STOP_STEP } from "../model/llama.js";
import { ropeTables } from "../model/rope.js";
import { LINEAR_NAMES, type LinearName, type LinearSource, linearToF32, type ModelSources } from "../model/weights.js";
import { GpuLayerOps, type GpuLinear } from "./gpu-layer-ops.js";
import { gpuOps } from "./gpu-ops.js";

/** Rows of a linear layer's input in device memory: fp16 [rows, k] at `byteOffset` of `buffer`. */
export interface DeviceRows {
  buffer: DeviceBuffer;
  byteOffset: number;
  rows: number;
  k: number;
  /** Index of the first row in the whole batch. */
  row0: number;
}

/** Sees a linear layer's input, chunk by chunk (q/k/v share one input, as do gate/up). */
export type GpuLinearHook = (name: LinearName, x: DeviceRows) => void;

export interface GpuLayerForwardOptions {
  /** Longest sequence a pass may hold (size of the RoPE tables). */
  maxSeqLen: number;
  /** Tokens per chunk (whole sequences; a longer sequence gets a chunk of its own). Default 16384. */
  chunkTokens?: number;
  /**
   * Keep, over the whole batch, the attention output and the post-attention residual of the last
   * pass (2 fp16 buffers of [tokens, hidden]) so later passes over the same input skip recomputing
   * them while the q/k/v and o_proj weights stay unchanged (GPTQ's true-sequential passes).
   */
  keepIntermediates?: boolean;
}

export interface LayerPassOptions {
  /** Where the layer's output [tokens, hidden] goes (may be `hidden` itself). Required unless stopAfter. */
  out?: DeviceBuffer;
  hook?: GpuLinearHook;
  /** End each chunk's pass once this linear's input was shown to the hook; nothing is written to out. */
  stopAfter?: LinearName;
}

/** Fused linear layers as the engine holds them: [q | k | v] and [gate | up] share one buffer. */
const FUSED: Record<LinearName, "qkv" | "o" | "gateUp" | "down"> = {
  q_proj: "qkv",
  k_proj: "qkv",
  v_proj: "qkv",
  o_proj: "o",
  gate_proj: "gateUp",
  up_proj: "gateUp",
  down_proj: "down",
};

type Slot = "qkv" | "o" | "gateUp" | "down";

/** A fused linear as this pass holds it: W [n, k] fp16 on the host (editable), prepared for the device. */
interface HeldLinear {
  w: Uint16Array;
  n: number;
  k: number;
  bias?: Float32Array;
  run: GpuLinear;
}

/** Where each chunk's rows read and write its contiguous K/V cache. */
interface ChunkPlan {
  key: string;
  total: number;
  maxLen: number;
  chunks: { row0: number; rows: number; seq0: number; seqs: number; cacheRows: number }[];
  positions: DeviceBuffer;
  slots: DeviceBuffer;
  seqOfRow: DeviceBuffer;
  /** [numSeqs] one block per sequence (block size = the chunk's cache stride). */
  tables: DeviceBuffer;
  /** Cache rows per sequence (block size of the attention's trivial table). */
  stride: number;
}

export class GpuLayerForward {
  readonly config: ModelConfig;
  readonly maxSeqLen: number;
  readonly chunkTokens: number;
  readonly keepIntermediates: boolean;
  private readonly sources: ModelSources;
  private layerIndex = -1;
  private inputNorm?: DeviceBuffer;
  private postNorm?: DeviceBuffer;
  private readonly lin: Partial<Record<Slot, HeldLinear>> = {};
  private embedTable?: DeviceBuffer;
  private readonly cos: DeviceBuffer;
  private readonly sin: DeviceBuffer;
  private scratch: Record<string, DeviceBuffer> = {};
  private scratchRows = 0;
  private cacheRows = 0;
  private plan?: ChunkPlan;
  // Kept intermediates over the whole batch, and what they were computed from.
  private attnAll?: DeviceBuffer;
  private midAll?: DeviceBuffer;
  private attnKey?: string;
  private midKey?: string;
  private qkvVersion = 0;
  private oVersion = 0;
  private inputVersion = 0;
  private disposed = false;

  constructor(config: ModelConfig, sources: ModelSources, opts: GpuLayerForwardOptions) {
    if (!hasGpu()) throw new NoDeviceError(`the GPU layer forward needs a CUDA device: ${noGpuReason()}`);
    if (!Number.isInteger(opts.maxSeqLen) || opts.maxSeqLen < 1) throw new InvalidArgumentError(`maxSeqLen must be a positive integer, got ${opts.maxSeqLen}`);
    if (opts.maxSeqLen > config.maxPositionEmbeddings)
      throw new InvalidArgumentError(`maxSeqLen ${opts.maxSeqLen} exceeds the model's ${config.maxPositionEmbeddings} positions`);
    const chunk = opts.chunkTokens ?? 16384;
    if (!Number.isInteger(chunk) || chunk < 1) throw new InvalidArgumentError(`chunkTokens must be a positive integer, got ${chunk}`);
    if (sources.layers.length !== config.numLayers) throw new ShapeError(`${sources.layers.length} layers of weights for ${config.numLayers} in the config`);
    gpuOps(); // fails early (typed) on an addon without the CUDA ops
    this.config = config;
    this.sources = sources;
    this.maxSeqLen = opts.maxSeqLen;
    this.chunkTokens = chunk;
    this.keepIntermediates = opts.keepIntermediates ?? false;
    const t = ropeTables(config, opts.maxSeqLen);
    this.cos = DeviceBuffer.from(t.cos);
    this.sin = DeviceBuffer.from(t.sin);
  }

  /** The layer whose weights are on the device (-1 before loadLayer). */
  get layer(): number {
    return this.layerIndex;
  }

  /** Hidden states [tokens, hidden] (fp16, a new device buffer the caller frees) of token ids. */
  embed(tokens: Int32Array): DeviceBuffer {
    this.live();
    const c = this.config;
    const T = tokens.length;
    if (T === 0) throw new ShapeError("embed: no tokens");
    for (let i = 0; i < T; i++)
      if (!(tokens[i] >= 0 && tokens[i] < c.vocabSize)) throw new InvalidArgumentError(`token ${i} is ${tokens[i]}, outside the vocabulary of ${c.vocabSize}`);
    this.embedTable ??= DeviceBuffer.from(f32ToF16(this.sources.embed));
    const ids = DeviceBuffer.from(tokens);
    const out = DeviceBuffer.alloc(T * c.hiddenSize * 2);
    try {
      gpuOps().embedding(ids, this.embedTable, out, T, c.hiddenSize, c.vocabSize);
    } catch (e) {
      out.free();
      throw e;
    } finally {
      ids.free(); // cudaFree waits for the queued lookup
    }
    this.inputVersion++;
    return out;
  }

  /** Puts layer `li`'s weights (as the sources hold them now) on the device, replacing the last layer's. */
  loadLayer(li: number): void {
    this.live();
    const c = this.config;
    if (!Number.isInteger(li) || li < 0 || li >= c.numLayers) throw new InvalidArgumentError(`layer ${li} does not exist (${c.numLayers} layers)`);
    const L = this.sources.layers[li];
    this.freeLayer();
    const fuse = (names: LinearName[]): HeldLinear => {
      const parts = names.map((n) => L.linears[n]);
      const k = parts[0].k;
      const n = parts.reduce((a, p) => a + p.n, 0);
      const w = new Uint16Array(n * k);
      let row = 0;
      for (const p of parts) {
        if (p.k !== k) throw new ShapeError(`${names.join("+")}: fused layers must share k`);
        w.set(fp16Of(p), row * k);
        row += p.n;
      }
      let bias: Float32Array | undefined;
      if (parts.some((p) => p.bias)) {
        bias = new Float32Array(n);
        let at = 0;
        for (const p of parts) {
          if (p.bias) bias.set(p.bias, at);
          at += p.n;
        }
      }
      return { w, n, k, bias, run: this.prepare(names.join("+"), w, n, k, bias) };
    };
    this.inputNorm = DeviceBuffer.from(L.inputNorm);
    this.postNorm = DeviceBuffer.from(L.postNorm);
    for (const slot of Object.keys(FUSED_LINEARS) as Slot[]) this.lin[slot] = fuse(FUSED_LINEARS[slot]);
    this.layerIndex = li;
    this.qkvVersion++;
    this.oVersion++;
  }

  /** A dense fp16 linear prepared for the device, for the largest chunk (a sequence longer than chunkTokens is a chunk of its own). */
  private prepare(name: string, w: Uint16Array, n: number, k: number, bias?: Float32Array): GpuLinear {
    return prepareSource<DeviceArg, Stream>({ kind: "dense", n, k, weight: { dtype: "float16", shape: [n, k], data: w }, name }, bias, { device: gpuTarget(0), maxRows: Math.max(this.chunkTokens, this.maxSeqLen) });
  }

  /** Rows [from, from + n) of the fused buffer that holds `name`. */
  private slice(name: LinearName): { d: HeldLinear; slot: Slot; from: number; n: number } {
    const c = this.config;
    if (!Object.hasOwn(FUSED, name)) throw new InvalidArgumentError(`unknown linear layer ${name}; one of ${LINEAR_NAMES.join(", ")}`);
    const d = this.lin[FUSED[name]];
    if (!d) throw new InvalidArgumentError("no layer loaded (call loadLayer first)");
    const qd = c.numHeads * c.headDim;
    const kvd = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const at: Record<LinearName, [number, number]> = {
      q_proj: [0, qd],
      k_proj: [qd, kvd],
      v_proj: [qd + kvd, kvd],
      o_proj: [0, c.hiddenSize],
      gate_proj: [0, I],
      up_proj: [I, I],
      down_proj: [0, c.hiddenSize],
    };
    const [from, n] = at[name];
    return { d, slot: FUSED[name], from, n };
  }

  /** Replaces a linear layer's weight W [n, k]: fp32 values, or fp16 bits (Uint16Array). */
  setLinearWeight(name: LinearName, w: Float32Array | Uint16Array): void {
    this.live();
    const { d, slot, from, n } = this.slice(name);
    if (w.length !== n * d.k) throw new ShapeError(`${name} weight needs ${n}x${d.k} elements, got ${w.length}`);
    d.w.set(w instanceof Uint16Array ? w : f32ToF16(w), from * d.k);
    // cudaFree in dispose waits for queued work, so the old weights outlive the calls that read them.
    const next = this.prepare(slot, d.w, d.n, d.k, d.bias);
    d.run.dispose();
    d.run = next;
    if (slot === "qkv") this.qkvVersion++;
    if (slot === "o") this.oVersion++;
  }

  /** A linear layer's weight W [n, k] as the device holds it (fp16 values as fp32). */
  getLinearWeight(name: LinearName): Float32Array {
    this.live();
    const { d, from, n } = this.slice(name);
    return f16ToF32(d.w.subarray(from * d.k, (from + n) * d.k));
  }

  /** Forgets the kept intermediates (call after rewriting a pass's input buffer in place). */
  invalidate(): void {
    this.attnKey = undefined;
    this.midKey = undefined;
    this.inputVersion++;
  }

  /** Chunks of whole sequences and their row bookkeeping (uploaded once per batch shape). */
  private planFor(seqLens: number[]): ChunkPlan {
    const key = seqLens.join(",");
    if (this.plan?.key === key) return this.plan;
    if (seqLens.length === 0) throw new ShapeError("no sequences");
    for (const l of seqLens)
      if (!Number.isInteger(l) || l < 1 || l > this.maxSeqLen) throw new InvalidArgumentError(`sequence length ${l} is not in [1, ${this.maxSeqLen}]`);
    const total = seqLens.reduce((a, b) => a + b, 0);
    const maxLen = Math.max(...seqLens);
    // Each sequence owns `stride` cache rows (a multiple of 8 keeps the K/V rows 16-byte aligned).
    const stride = Math.ceil(maxLen / 8) * 8;
    const chunks: ChunkPlan["chunks"] = [];
    const positions = new Int32Array(total);
    const slots = new Int32Array(total);
    const seqOfRow = new Int32Array(total);
    const tables = new Int32Array(seqLens.length);
    let row = 0;
    let s = 0;
    while (s < seqLens.length) {
      const c = { row0: row, rows: 0, seq0: s, seqs: 0, cacheRows: 0 };
      while (s < seqLens.length && (c.seqs === 0 || c.rows + seqLens[s] <= this.chunkTokens)) {
        const len = seqLens[s];
        tables[s] = c.seqs; // sequence j of the chunk owns block j
        for (let p = 0; p < len; p++, row++) {
          positions[row] = p;
          slots[row] = c.seqs * stride + p;
          seqOfRow[row] = c.seqs;
        }
        c.rows += len;
        c.seqs++;
        s++;
      }
      c.cacheRows = c.seqs * stride;
      chunks.push(c);
    }
    this.freePlan();
    this.plan = {
      key,
      total,
      maxLen,
      chunks,
      stride,
      positions: DeviceBuffer.from(positions),
      slots: DeviceBuffer.from(slots),
      seqOfRow: DeviceBuffer.from(seqOfRow),
      tables: DeviceBuffer.from(tables),
    };
    return this.plan;
  }

  /** Scratch for the largest chunk (grown on demand; waits for queued work before freeing). */
  private ensureScratch(rows: number, cacheRows: number): Record<string, DeviceBuffer> {
    if (rows <= this.scratchRows && cacheRows <= this.cacheRows) return this.scratch;
    this.freeScratch();
    const c = this.config;
    const H = c.hiddenSize;
    const qd = c.numHeads * c.headDim;
    const kvd = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const a = (elems: number) => DeviceBuffer.alloc(Math.max(16, elems * 2));
    this.scratch = {
      x: a(rows * Math.max(H, qd)),
      res: a(rows * H),
      qkv: a(rows * (qd + 2 * kvd)),
      attn: a(rows * qd),
      gu: a(rows * 2 * I),
      act: a(rows * I),
      k: a(cacheRows * kvd),
      v: a(cacheRows * kvd),
    };
    this.scratchRows = rows;
    this.cacheRows = cacheRows;
    return this.scratch;
  }

  private ensureKept(total: number): void {
    const c = this.config;
    const attnBytes = total * c.numHeads * c.headDim * 2;
    const midBytes = total * c.hiddenSize * 2;
    if (this.attnAll && this.attnAll.byteLength >= attnBytes && this.midAll && this.midAll.byteLength >= midBytes) return;
    this.attnAll?.free();
    this.midAll?.free();
    this.attnAll = DeviceBuffer.alloc(attnBytes);
    this.midAll = DeviceBuffer.alloc(midBytes);
    this.attnKey = undefined;
    this.midKey = undefined;
  }

  /**
   * The loaded layer over `hidden` (fp16 [sum(seqLens), hidden]) of consecutive sequences, causal
   * within each. `hook` sees every linear's input up to the end of the pass; with `stopAfter` each
   * chunk's pass ends once that input was shown, otherwise the output goes to `out`.
   */
  forward(hidden: DeviceBuffer, seqLens: number[], opts: LayerPassOptions = {}): void {
    this.live();
    const c = this.config;
    if (this.layerIndex < 0) throw new InvalidArgumentError("no layer loaded (call loadLayer first)");
    const { out, hook, stopAfter } = opts;
    if (stopAfter !== undefined && !Object.hasOwn(STOP_STEP, stopAfter)) throw new InvalidArgumentError(`unknown linear layer ${stopAfter}; one of ${LINEAR_NAMES.join(", ")}`);
    if (stopAfter === undefined && !out) throw new InvalidArgumentError("forward: an output buffer is needed unless the pass stops early");
    const plan = this.planFor(seqLens);
    const { H, qd, I } = layerDims(c);
    const T = plan.total;
    if (hidden.byteLength < T * H * 2) throw new ShapeError(`hidden holds ${hidden.byteLength} bytes, needs ${T}x${H} fp16`);
    if (out && out.byteLength < T * H * 2) throw new ShapeError(`out holds ${out.byteLength} bytes, needs ${T}x${H} fp16`);
    const last = stopAfter === undefined ? 4 : STOP_STEP[stopAfter];
    const b = this.ensureScratch(
      plan.chunks.reduce((a, ch) => Math.max(a, ch.rows), 0),
      plan.chunks.reduce((a, ch) => Math.max(a, ch.cacheRows), 0),
    );
    const keep = this.keepIntermediates;
    if (keep) this.ensureKept(T);
    const inputId = bufferId(hidden);
    const attnKey = `${this.inputVersion}|${inputId}|${plan.key}|${this.qkvVersion}`;
    const midKey = `${attnKey}|${this.oVersion}`;
    const haveMid = keep && this.midKey === midKey;
    const haveAttn = haveMid || (keep && this.attnKey === attnKey);

    const L = this.lin as Required<typeof this.lin>;
    const params: LayerParams<DeviceArg, Stream> = {
      inputNorm: this.inputNorm!,
      postNorm: this.postNorm!,
      qkv: L.qkv.run,
      o: L.o.run,
      gateUp: L.gateUp.run,
      down: L.down.run,
    };
    const widths: Record<LinearName, number> = { q_proj: H, k_proj: H, v_proj: H, o_proj: qd, gate_proj: H, up_proj: H, down_proj: I };

    for (const ch of plan.chunks) {
      const R = ch.rows;
      const hOff = ch.row0 * H * 2;
      const at = ch.row0 * 4; // byte offset of the chunk's rows in the int32 row tables
      const ops = new GpuLayerOps(c, this.cos, this.sin, {
        positions: [plan.positions, at],
        slots: [plan.slots, at],
        seqOfRow: [plan.seqOfRow, at],
        blockTables: [plan.tables, ch.seq0 * 4],
        k: () => b.k,
        v: () => b.v,
        numSeqs: ch.seqs,
        maxBlocks: 1,
        blockSize: plan.stride,
        numBlocks: ch.seqs,
        maxContext: plan.maxLen,
        ropeRows: this.maxSeqLen,
      });
      const pass: LayerPass<DeviceArg> = {
        fresh: true,
        stopAt: last < 4 ? last : undefined,
        hook:
          hook &&
          ((names, x, rows) => {
            const [buffer, byteOffset] = x instanceof DeviceBuffer ? [x, 0] : x;
            for (const n of names) hook(n, { buffer, byteOffset, rows, k: widths[n], row0: ch.row0 });
          }),
      };
      // The residual after attention: kept over the whole batch, or in out / scratch.
      const res: [DeviceBuffer, number] = keep ? [this.midAll!, hOff] : out && last === 4 ? [out, hOff] : [b.res, 0];
      const attn: [DeviceBuffer, number] = keep ? [this.attnAll!, ch.row0 * qd * 2] : [b.attn, 0];
      const buf: LayerBuffers<DeviceArg> = { h: [hidden, hOff], x: b.x, qkv: b.qkv, attn, gu: b.gu, act: b.act };
      // 0-1: norm1, q/k/v and attention (kept: only what a hook or the stop point needs)
      if (!haveAttn) {
        if (!attentionBlock(ops, params, 0, buf, R, pass)) continue;
      } else if (hook || last === 0) {
        ops.rmsnorm(buf.h, params.inputNorm, buf.x, R);
        pass.hook?.(["q_proj", "k_proj", "v_proj"], buf.x, R);
        if (last === 0) continue;
      }
      // 1-2: h1 = h + o(attn) and the MLP input x = norm2(h1)
      buf.h = res;
      if (!haveMid) {
        if (res[0] !== hidden || res[1] !== hOff) res[0].copyFrom(hidden, hOff, res[1], R * H * 2);
        if (!attentionOutput(ops, params, buf, R, pass)) continue;
      } else {
        pass.hook?.(["o_proj"], attn, R);
        if (last === 1) continue;
        ops.rmsnorm(res, params.postNorm, buf.x, R);
      }
      // 2-4: the MLP, then out = h1 + down(...) (addRmsnorm does the add; the normed copy it leaves in x is unused)
      if (!mlpBlock(ops, params, buf, R, pass)) continue;
      const o = out!;
      if (res[0] !== o || res[1] !== hOff) o.copyFrom(res[0], res[1], hOff, R * H * 2);
      ops.addRmsnorm([o, hOff], buf.x, params.postNorm, R);
    }
    if (keep && last >= 1) {
      this.attnKey = attnKey;
      this.keptInput = inputId;
      if (last >= 2) this.midKey = midKey;
    }
    // Writing over the input of what was kept makes it stale.
    if (out && bufferId(out) === this.keptInput) this.invalidate();
  }

  private keptInput = 0;

  private live(): void {
    if (this.disposed) throw new InvalidArgumentError("GpuLayerForward was disposed");
  }

  private freeLayer(): void {
    this.inputNorm?.free();
    this.postNorm?.free();
    for (const d of Object.values(this.lin)) d.run.dispose();
    this.inputNorm = this.postNorm = undefined;
    for (const k of Object.keys(this.lin)) delete this.lin[k as keyof typeof this.lin];
    this.layerIndex = -1;
  }

  private freeScratch(): void {
    for (const b of Object.values(this.scratch)) b.free();
    this.scratch = {};
    this.scratchRows = 0;
    this.cacheRows = 0;
  }

  private freePlan(): void {
    const p = this.plan;
    if (!p) return;
    for (const b of [p.positions, p.slots, p.seqOfRow, p.tables]) b.free();
    this.plan = undefined;
  }

  /** Frees every device buffer it holds (not the ones handed out by embed). */
  dispose(): void {
    if (this.disposed) return;
    this.freeLayer();
    this.freeScratch();
    this.freePlan();
    this.attnAll?.free();
    this.midAll?.free();
    this.embedTable?.free();
    this.cos.free();
    this.sin.free();
    this.disposed = true;
  }
}

/** A linear's weight W [n, k] as fp16 bits: fp16 checkpoints as they are, others converted. */
function fp16Of(src: LinearSource): Uint16Array {
  if (src.kind === "dense" && src.weight.dtype === "float16") return src.weight.data as Uint16Array;
  return f32ToF16(linearToF32(src));
}

const ids = new WeakMap<object, number>();
let nextId = 1;
/** A stable identity for a buffer (keys of the kept intermediates). */
function bufferId(b: DeviceBuffer): number {
  let id = ids.get(b);
  if (id === undefined) {
    id = nextId++;
    ids.set(b, id);
  }
  return id;
}
