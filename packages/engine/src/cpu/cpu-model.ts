/**
 * A Llama-family model on the CPU: fp32 activations; dense weights in fp32 (fp16 / bf16 converted
 * once at load), quantized ones kept packed and run by the Marlin CPU path (or dequantized when
 * no quantized CPU implementation fits the shape); C++ ops from the addon, batch-invariant.
 *
 * Besides the paged forward pass the engine uses, it exposes the pieces a GPTQ pass needs: the
 * embedding, one decoder layer's forward over plain (unpaged) sequences with a hook on every linear
 * layer's input, and reading or replacing one linear layer's weights.
 */
import { CPU, InvalidArgumentError, ShapeError } from "@marlin/core";
import { layerDims, type ModelConfig } from "../model/config.js";
import { selectLinearKernel } from "../model/linear-kernel.js";
import { ropeTables } from "../model/rope.js";
import { fuseLinears, LINEAR_NAMES, type LinearName, type LinearSource, linearToF32, type ModelSources } from "../model/weights.js";
import { CpuMarlinLinear } from "./cpu-marlin-linear.js";
import { type CpuOps, cpuOps } from "./ops.js";

/** A linear layer packed for the CPU op: W [n, k] in 16-column panels. */
export class CpuLinear {
  readonly n: number;
  readonly k: number;
  packed: Float32Array;
  bias: Float32Array | null;
  constructor(w: Float32Array, n: number, k: number, bias: Float32Array | null = null) {
    if (w.length !== n * k) throw new ShapeError(`weight has ${w.length} elements, expected ${n}x${k}`);
    const ops = cpuOps();
    this.n = n;
    this.k = k;
    this.packed = new Float32Array(ops.packedLinearSize(n, k));
    ops.packLinear(w, n, k, this.packed);
    this.bias = bias;
  }
  /** out[m, n] = x[m, k] W^T + b */
  forward(x: Float32Array, m: number, out: Float32Array): Float32Array {
    cpuOps().linear(x, this.packed, this.bias, out, m, this.n, this.k);
    return out;
  }
  /** W back as [n, k]. */
  unpack(): Float32Array {
    const { n, k } = this;
    const w = new Float32Array(n * k);
    for (let j = 0; j < n; j++) {
      const base = Math.floor(j / 16) * k * 16 + (j % 16);
      for (let i = 0; i < k; i++) w[j * k + i] = this.packed[base + i * 16];
    }
    return w;
  }
}

/** What a CPU layer's linears do: dense fp32 (CpuLinear) or quantized (CpuMarlinLinear). */
export type CpuMatmul = CpuLinear | CpuMarlinLinear;

export interface CpuLayer {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  qkv: CpuMatmul;
  o: CpuMatmul;
  gateUp: CpuMatmul;
  down: CpuMatmul;
}

/** Where each row of a forward pass reads and writes the paged cache. */
export interface PagedBatch {
  tokens: Int32Array;
  positions: Int32Array;
  /** Cache slot (block * blockSize + offset) each row's k/v go to; -1 = do not store. */
  slots: Int32Array;
  seqOfRow: Int32Array;
  /** [numSeqs, maxBlocks] */
  blockTables: Int32Array;
  maxBlocks: number;
}

/** One layer's K and V caches: [numBlocks * blockSize, kvHeads * headDim] each. */
export class CpuKvCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  readonly numBlocks: number;
  readonly blockSize: number;
  constructor(config: ModelConfig, numLayers: number, numBlocks: number, blockSize: number) {
    const per = numBlocks * blockSize * config.numKvHeads * config.headDim;
    this.k = Array.from({ length: numLayers }, () => new Float32Array(per));
    this.v = Array.from({ length: numLayers }, () => new Float32Array(per));
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
  }
}

export type LinearHook = (layer: number, name: LinearName, x: Float32Array, rows: number, k: number) => void;

export class CpuLlama {
  readonly config: ModelConfig;
  readonly layers: CpuLayer[];
  readonly embed: Float32Array;
  readonly norm: Float32Array;
  readonly lmHead: CpuLinear;
  /** Implementation per fused linear layer (as the GPU runner reports them). */
  readonly kernels: Record<string, string> = {};
  readonly maxPositions: number;
  private readonly cos: Float32Array;
  private readonly sin: Float32Array;
  private readonly ops: CpuOps;

  constructor(config: ModelConfig, src: ModelSources, maxPositions = config.maxPositionEmbeddings) {
    this.config = config;
    this.ops = cpuOps();
    this.embed = src.embed;
    this.norm = src.norm;
    this.maxPositions = maxPositions;
    const H = config.hiddenSize;
    this.lmHead = src.lmHead
      ? new CpuLinear(linearToF32(src.lmHead), config.vocabSize, H)
      : new CpuLinear(src.embed, config.vocabSize, H);
    this.layers = src.layers.map((l) => {
      const fuse = (names: LinearName[]): CpuMatmul => {
        const { source, bias } = fuseLinears(names, l.linears);
        const id = this.pickKernel(source);
        this.kernels[source.name] = id;
        if (source.kind === "quantized" && id === "marlin.cpu") return new CpuMarlinLinear(source.layer, bias ?? null);
        return new CpuLinear(linearToF32(source), source.n, source.k, bias ?? null);
      };
      return {
        inputNorm: l.inputNorm,
        postNorm: l.postNorm,
        qkv: fuse(["q_proj", "k_proj", "v_proj"]),
        o: fuse(["o_proj"]),
        gateUp: fuse(["gate_proj", "up_proj"]),
        down: fuse(["down_proj"]),
      };
    });
    const t = ropeTables(config, maxPositions);
    this.cos = t.cos;
    this.sin = t.sin;
  }

  /** Hidden states [T, H] of token ids. */
  embedTokens(tokens: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const out = new Float32Array(tokens.length * H);
    this.ops.embedding(tokens, this.embed, this.config.vocabSize, H, out);
    return out;
  }

  /**
   * One decoder layer, in place on the residual stream h [T, H] (h_out = h + attn + mlp), reading
   * and writing the layer's paged cache.
   */
  runLayer(li: number, h: Float32Array, b: PagedBatch, kCache: Float32Array, vCache: Float32Array, blockSize: number, hook?: LinearHook): void {
    const c = this.config;
    const L = this.layers[li];
    const T = b.tokens.length;
    const { H, qd, kvd, qkvN, I } = layerDims(c);
    const ops = this.ops;

    const x = new Float32Array(T * H);
    ops.rmsnorm(h, L.inputNorm, c.rmsNormEps, T, H, x);
    if (hook) for (const n of ["q_proj", "k_proj", "v_proj"] as const) hook(li, n, x, T, H);
    const qkv = L.qkv.forward(x, T, new Float32Array(T * qkvN));
    ops.rope(qkv, T, qkvN, c.numHeads + c.numKvHeads, c.headDim, c.headDim, b.positions, this.cos, this.sin, this.maxPositions);
    ops.storeKv(qkv, T, qkvN, qd, qd + kvd, kvd, b.slots, kCache, vCache);
    const attn = new Float32Array(T * qd);
    ops.pagedAttention(qkv, T, qkvN, c.numHeads, c.numKvHeads, c.headDim, kCache, vCache, b.blockTables, b.maxBlocks, blockSize, b.seqOfRow, b.positions, 1 / Math.sqrt(c.headDim), attn);
    hook?.(li, "o_proj", attn, T, qd);
    const o = L.o.forward(attn, T, x); // x is free again
    ops.addRmsnorm(o, h, L.postNorm, c.rmsNormEps, T, H); // h += o; o = norm(h)
    if (hook) for (const n of ["gate_proj", "up_proj"] as const) hook(li, n, o, T, H);
    const gu = L.gateUp.forward(o, T, new Float32Array(T * 2 * I));
    const act = new Float32Array(T * I);
    ops.siluMul(gu, T, I, act);
    hook?.(li, "down_proj", act, T, I);
    const d = L.down.forward(act, T, o);
    for (let i = 0; i < h.length; i++) h[i] += d[i];
  }

  /** Logits [rows.length, vocab] of the final hidden states of the given rows. */
  logitsOf(h: Float32Array, rows: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const V = this.config.vocabSize;
    const sel = new Float32Array(rows.length * H);
    for (let r = 0; r < rows.length; r++) sel.set(h.subarray(rows[r] * H, rows[r] * H + H), r * H);
    this.ops.rmsnorm(sel, this.norm, this.config.rmsNormEps, rows.length, H, sel);
    return this.lmHead.forward(sel, rows.length, new Float32Array(rows.length * V));
  }

  /** The paged forward pass of the engine: logits of `logitRows`. */
  forward(b: PagedBatch, cache: CpuKvCache, logitRows: Int32Array): Float32Array {
    this.checkBatch(b, cache);
    const h = this.embedTokens(b.tokens);
    for (let i = 0; i < this.layers.length; i++) this.runLayer(i, h, b, cache.k[i], cache.v[i], cache.blockSize);
    return this.logitsOf(h, logitRows);
  }

  private checkBatch(b: PagedBatch, cache: CpuKvCache): void {
    const T = b.tokens.length;
    if (b.positions.length !== T || b.slots.length !== T || b.seqOfRow.length !== T)
      throw new ShapeError("tokens, positions, slots and seqOfRow must have one entry per row");
    for (let i = 0; i < T; i++)
      if (b.positions[i] >= this.maxPositions)
        throw new InvalidArgumentError(`position ${b.positions[i]} is beyond the model's ${this.maxPositions} positions`);
    if (b.slots.some((s) => s >= cache.numBlocks * cache.blockSize)) throw new InvalidArgumentError("slot beyond the cache");
  }

  // ---- GPTQ support: plain (unpaged) sequences, one layer at a time -------------------------

  /** Paged-batch bookkeeping for consecutive sequences of the given lengths over a scratch cache. */
  static plainBatch(seqLens: number[], blockSize = 16): { batch: PagedBatch; numBlocks: number } {
    const T = seqLens.reduce((a, b) => a + b, 0);
    const maxBlocks = Math.max(1, ...seqLens.map((l) => Math.ceil(l / blockSize)));
    const tables = new Int32Array(seqLens.length * maxBlocks);
    const positions = new Int32Array(T);
    const slots = new Int32Array(T);
    const seqOfRow = new Int32Array(T);
    let row = 0;
    let block = 0;
    seqLens.forEach((len, s) => {
      const nb = Math.ceil(len / blockSize);
      for (let j = 0; j < nb; j++) tables[s * maxBlocks + j] = block + j;
      for (let p = 0; p < len; p++, row++) {
        positions[row] = p;
        seqOfRow[row] = s;
        slots[row] = (block + Math.floor(p / blockSize)) * blockSize + (p % blockSize);
      }
      block += nb;
    });
    return { batch: { tokens: new Int32Array(T), positions, slots, seqOfRow, blockTables: tables, maxBlocks }, numBlocks: Math.max(1, block) };
  }

  /**
   * Decoder layer `li` over hidden states [T, H] of consecutive sequences (`seqLens` sum to T),
   * causal within each; returns the layer's output [T, H]. `hook` sees every linear layer's input.
   */
  layerForward(li: number, hidden: Float32Array, seqLens: number[], hook?: LinearHook): Float32Array {
    const H = this.config.hiddenSize;
    const T = seqLens.reduce((a, b) => a + b, 0);
    if (hidden.length !== T * H) throw new ShapeError(`hidden has ${hidden.length} elements, expected ${T}x${H}`);
    if (li < 0 || li >= this.layers.length) throw new InvalidArgumentError(`layer ${li} does not exist`);
    const { batch, numBlocks } = CpuLlama.plainBatch(seqLens);
    const kvd = this.config.numKvHeads * this.config.headDim;
    const k = new Float32Array(numBlocks * 16 * kvd);
    const v = new Float32Array(numBlocks * 16 * kvd);
    const h = hidden.slice();
    this.runLayer(li, h, batch, k, v, 16, hook);
    return h;
  }

  /**
   * Runs token sequences through the whole model one layer at a time, showing each layer its input
   * hidden states [T, H] (a GPTQ pass captures them here) and, through `hook`, every linear input.
   * Returns the last layer's output.
   */
  runLayers(seqs: number[][], onLayerInput?: (layer: number, hidden: Float32Array, seqLens: number[]) => void, hook?: LinearHook): Float32Array {
    const lens = seqs.map((s) => s.length);
    let h = this.embedTokens(Int32Array.from(seqs.flat()));
    for (let i = 0; i < this.layers.length; i++) {
      onLayerInput?.(i, h, lens);
      h = this.layerForward(i, h, lens, hook);
    }
    return h;
  }

  /** Final norm + lm_head over hidden states [T, H]: logits [T, vocab]. */
  headForward(hidden: Float32Array, rows: number): Float32Array {
    return this.logitsOf(hidden, Int32Array.from({ length: rows }, (_, i) => i));
  }

  /**
   * The registry's CPU pick for a linear layer: quantized ones run packed (marlin.cpu) when a
   * quantized CPU implementation fits, dense ones (and quantized ones nothing fits, dequantized)
   * through the fp32 panel GEMM.
   */
  private pickKernel(src: LinearSource): string {
    if (src.kind === "dense") return "dense.cpu";
    try {
      return selectLinearKernel(src, 1, CPU);
    } catch (e) {
      if ((e as { code?: string }).code !== "ERR_MARLIN_NO_KERNEL") throw e;
      return `dense.cpu (dequantized: ${(e as Error).message.split("\n").slice(1).join("; ").trim()})`;
    }
  }

  private fused(li: number, name: LinearName): { lin: CpuLinear; from: number; n: number } {
    const c = this.config;
    const L = this.layers[li];
    if (!L) throw new InvalidArgumentError(`layer ${li} does not exist`);
    const qd = c.numHeads * c.headDim;
    const kvd = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const dense = (lin: CpuMatmul): CpuLinear => {
      if (lin instanceof CpuLinear) return lin;
      throw new InvalidArgumentError(`layer ${li} ${name} is quantized: its weights are not editable on the CPU model`);
    };
    switch (name) {
      case "q_proj":
        return { lin: dense(L.qkv), from: 0, n: qd };
      case "k_proj":
        return { lin: dense(L.qkv), from: qd, n: kvd };
      case "v_proj":
        return { lin: dense(L.qkv), from: qd + kvd, n: kvd };
      case "o_proj":
        return { lin: dense(L.o), from: 0, n: c.hiddenSize };
      case "gate_proj":
        return { lin: dense(L.gateUp), from: 0, n: I };
      case "up_proj":
        return { lin: dense(L.gateUp), from: I, n: I };
      case "down_proj":
        return { lin: dense(L.down), from: 0, n: c.hiddenSize };
      default:
        throw new InvalidArgumentError(`unknown linear layer ${name}; one of ${LINEAR_NAMES.join(", ")}`);
    }
  }

  /** A linear layer's weight W [n, k] (a copy). */
  getLinearWeight(li: number, name: LinearName): Float32Array {
    const { lin, from, n } = this.fused(li, name);
    return lin.unpack().slice(from * lin.k, (from + n) * lin.k);
  }

  /** Replaces a linear layer's weight W [n, k] (e.g. with its dequantized GPTQ result). */
  setLinearWeight(li: number, name: LinearName, w: Float32Array): void {
    const { lin, from, n } = this.fused(li, name);
    if (w.length !== n * lin.k) throw new ShapeError(`${name} weight needs ${n}x${lin.k} elements, got ${w.length}`);
    const all = lin.unpack();
    all.set(w, from * lin.k);
    cpuOps().packLinear(all, lin.n, lin.k, lin.packed);
  }
}

