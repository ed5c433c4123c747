/**
 * A Llama-family model on the CPU: the decoder of model/llama.ts over fp32 host arrays, C++ ops
 * from the addon (batch invariant), and linear layers prepared through the registry (quantized
 * ones stay packed when a quantized CPU implementation takes them).
 *
 * Besides the paged forward pass the engine uses, it exposes the pieces a GPTQ pass needs: the
 * embedding, one decoder layer's forward over plain (unpaged) sequences with a hook on every linear
 * layer's input, and reading or replacing one linear layer's weights.
 */
import { CPU, type DispatchedLinear, InvalidArgumentError, ShapeError } from "@marlin/core";
import { layerDims, type ModelConfig } from "../model/config.js";
import { describePlans, disposeLinears, FUSED_LINEARS, prepareLayerLinears, prepareSource } from "../model/linears.js";
import { decoderLayer, decoderStack, type LayerBuffers, type LayerLinears, type LayerOps, type LayerParams } from "../model/llama.js";
import { ropeTables } from "../model/rope.js";
import { fuseLinears, LINEAR_NAMES, type LinearName, type LinearSource, linearToF32, type ModelSources } from "../model/weights.js";
import { type CpuOps, cpuOps } from "./ops.js";

/** A linear layer on the CPU: fp32 rows in and out. */
export type CpuLinear = DispatchedLinear<Float32Array>;

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

/**
 * A model's parts made elsewhere (tensor parallelism: sharded linears that own their collectives,
 * a vocabulary-parallel embedding and lm_head); the decoder is the same.
 */
export interface CpuModelParts {
  layerLinears(li: number, layer: ModelSources["layers"][number]): LayerLinears<Float32Array>;
  lmHead: CpuLinear;
  /** Hidden states [T, H] of token ids into out. */
  embed(tokens: Int32Array, out: Float32Array): void;
}

export type LinearHook = (layer: number, name: LinearName, x: Float32Array, rows: number, k: number) => void;

/** The per-op primitives of llama.ts over fp32 host rows, for one batch and cache. */
class CpuLayerOps implements LayerOps<Float32Array> {
  constructor(
    private readonly m: CpuLlama,
    private readonly b: PagedBatch,
    private readonly k: Float32Array[],
    private readonly v: Float32Array[],
    private readonly blockSize: number,
  ) {}
  rmsnorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number): void {
    this.m.ops.rmsnorm(x, w, this.m.config.rmsNormEps, rows, this.m.config.hiddenSize, out);
  }
  addRmsnorm(h: Float32Array, x: Float32Array, w: Float32Array, rows: number): void {
    this.m.ops.addRmsnorm(x, h, w, this.m.config.rmsNormEps, rows, this.m.config.hiddenSize);
  }
  ropeStoreKv(qkv: Float32Array, rows: number, li: number): void {
    const c = this.m.config;
    const { qd, kvd, qkvN } = layerDims(c);
    this.m.ops.rope(qkv, rows, qkvN, c.numHeads + c.numKvHeads, c.headDim, c.headDim, this.b.positions, this.m.cos, this.m.sin, this.m.maxPositions);
    this.m.ops.storeKv(qkv, rows, qkvN, qd, qd + kvd, kvd, this.b.slots, this.k[li], this.v[li]);
  }
  attention(qkv: Float32Array, out: Float32Array, rows: number, li: number): void {
    const c = this.m.config;
    const b = this.b;
    this.m.ops.pagedAttention(qkv, rows, layerDims(c).qkvN, c.numHeads, c.numKvHeads, c.headDim, this.k[li], this.v[li], b.blockTables, b.maxBlocks, this.blockSize, b.seqOfRow, b.positions, 1 / Math.sqrt(c.headDim), out);
  }
  siluMul(gu: Float32Array, out: Float32Array, rows: number): void {
    this.m.ops.siluMul(gu, rows, this.m.config.intermediateSize, out);
  }
  linear(l: CpuLinear, x: Float32Array, out: Float32Array, rows: number): void {
    l.forward(x, out, rows);
  }
}

export class CpuLlama {
  readonly config: ModelConfig;
  readonly layers: LayerParams<Float32Array>[];
  readonly embed: Float32Array;
  readonly norm: Float32Array;
  readonly lmHead: CpuLinear;
  /** Implementation per fused linear layer (as the GPU runner reports them). */
  readonly kernels: Record<string, string>;
  readonly maxPositions: number;
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly ops: CpuOps;
  /** The linear sources per layer (this model's copy: setLinearWeight replaces entries here). */
  private readonly linearSources: Record<LinearName, LinearSource>[];

  private readonly parts?: CpuModelParts;

  constructor(config: ModelConfig, src: ModelSources, maxPositions = config.maxPositionEmbeddings, parts?: CpuModelParts) {
    if (src.layers.length !== config.numLayers) throw new ShapeError(`${src.layers.length} layers of weights for ${config.numLayers} in the config`);
    this.config = config;
    this.ops = cpuOps();
    this.embed = src.embed;
    this.norm = src.norm;
    this.maxPositions = maxPositions;
    const H = config.hiddenSize;
    const opts = { device: CPU, maxRows: 1 << 20 };
    this.linearSources = src.layers.map((l) => ({ ...l.linears }));
    this.parts = parts;
    this.lmHead =
      parts?.lmHead ??
      prepareSource<Float32Array, unknown>(
        src.lmHead ?? { kind: "dense", n: config.vocabSize, k: H, weight: { dtype: "float32", shape: [config.vocabSize, H], data: src.embed }, name: "lm_head" },
        undefined,
        opts,
      );
    this.layers = src.layers.map((l, li) => ({ inputNorm: l.inputNorm, postNorm: l.postNorm, ...(parts ? parts.layerLinears(li, l) : prepareLayerLinears<Float32Array, unknown>(l, opts)) }));
    const first = this.layers[0];
    this.kernels = first
      ? describePlans([
          ...(Object.keys(FUSED_LINEARS) as (keyof typeof FUSED_LINEARS)[]).map((s) => [FUSED_LINEARS[s].join("+"), first[s].plan] as [string, typeof first.qkv.plan]),
          ["lm_head", this.lmHead.plan],
        ])
      : {};
    const t = ropeTables(config, maxPositions);
    this.cos = t.cos;
    this.sin = t.sin;
  }

  /** Hidden states [T, H] of token ids. */
  embedTokens(tokens: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const out = new Float32Array(tokens.length * H);
    if (this.parts) this.parts.embed(tokens, out);
    else this.ops.embedding(tokens, this.embed, this.config.vocabSize, H, out);
    return out;
  }

  /** Scratch rows of a pass over T rows, h the given residual stream. */
  private buffers(h: Float32Array, T: number): LayerBuffers<Float32Array> {
    const { H, qd, qkvN, I } = layerDims(this.config);
    return { h, x: new Float32Array(T * H), qkv: new Float32Array(T * qkvN), attn: new Float32Array(T * qd), gu: new Float32Array(T * 2 * I), act: new Float32Array(T * I) };
  }

  /**
   * One decoder layer, in place on the residual stream h [T, H] (h_out = h + attn + mlp), reading
   * and writing the layer's paged cache.
   */
  runLayer(li: number, h: Float32Array, b: PagedBatch, kCache: Float32Array, vCache: Float32Array, blockSize: number, hook?: LinearHook): void {
    const T = b.tokens.length;
    const k: Float32Array[] = [];
    const v: Float32Array[] = [];
    k[li] = kCache;
    v[li] = vCache;
    const buf = this.buffers(h, T);
    const widths: Record<LinearName, number> = this.linearWidths();
    decoderLayer(new CpuLayerOps(this, b, k, v, blockSize), this.layers[li], li, buf, T, {
      fresh: true,
      hook:
        hook &&
        ((names, x, rows) => {
          for (const n of names) hook(li, n, x, rows, widths[n]);
        }),
    });
    for (let i = 0; i < h.length; i++) h[i] += buf.x[i];
  }

  /** Logits [rows.length, vocab] of the final (normed) hidden states of the given rows. */
  private headOf(x: Float32Array, rows: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const V = this.config.vocabSize;
    const sel = new Float32Array(rows.length * H);
    for (let r = 0; r < rows.length; r++) sel.set(x.subarray(rows[r] * H, rows[r] * H + H), r * H);
    const out = new Float32Array(rows.length * V);
    this.lmHead.forward(sel, out, rows.length);
    return out;
  }

  /** The paged forward pass of the engine: logits of `logitRows`. */
  forward(b: PagedBatch, cache: CpuKvCache, logitRows: Int32Array): Float32Array {
    this.checkBatch(b, cache);
    const T = b.tokens.length;
    const buf = this.buffers(this.embedTokens(b.tokens), T);
    decoderStack(new CpuLayerOps(this, b, cache.k, cache.v, cache.blockSize), this.layers, this.norm, buf, T);
    return this.headOf(buf.x, logitRows);
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
    if (!Number.isInteger(li) || li < 0 || li >= this.layers.length) throw new InvalidArgumentError(`layer ${li} does not exist`);
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
    const x = new Float32Array(rows * this.config.hiddenSize);
    this.ops.rmsnorm(hidden, this.norm, this.config.rmsNormEps, rows, this.config.hiddenSize, x);
    return this.headOf(x, Int32Array.from({ length: rows }, (_, i) => i));
  }

  private linearWidths(): Record<LinearName, number> {
    const { H, qd, I } = layerDims(this.config);
    return { q_proj: H, k_proj: H, v_proj: H, o_proj: qd, gate_proj: H, up_proj: H, down_proj: I };
  }

  private source(li: number, name: LinearName): LinearSource {
    if (!Number.isInteger(li) || !this.linearSources[li]) throw new InvalidArgumentError(`layer ${li} does not exist`);
    if (!LINEAR_NAMES.includes(name)) throw new InvalidArgumentError(`unknown linear layer ${name}; one of ${LINEAR_NAMES.join(", ")}`);
    return this.linearSources[li][name];
  }

  /** A linear layer's weight W [n, k] (a copy; quantized layers dequantized). */
  getLinearWeight(li: number, name: LinearName): Float32Array {
    return linearToF32(this.source(li, name)).slice();
  }

  /** Replaces a linear layer's weight W [n, k] (e.g. with its dequantized GPTQ result); its fused layer is prepared again. */
  setLinearWeight(li: number, name: LinearName, w: Float32Array): void {
    if (this.parts) throw new InvalidArgumentError("setLinearWeight needs an unsharded model");
    const src = this.source(li, name);
    if (w.length !== src.n * src.k) throw new ShapeError(`${name} weight needs ${src.n}x${src.k} elements, got ${w.length}`);
    this.linearSources[li][name] = { kind: "dense", n: src.n, k: src.k, weight: { dtype: "float32", shape: [src.n, src.k], data: w.slice() }, bias: src.bias, name: src.name };
    const slot = (Object.keys(FUSED_LINEARS) as (keyof typeof FUSED_LINEARS)[]).find((s) => FUSED_LINEARS[s].includes(name))!;
    const { source, bias } = fuseLinears(FUSED_LINEARS[slot], this.linearSources[li]);
    const next = prepareSource<Float32Array, unknown>(source, bias, { device: CPU, maxRows: 1 << 20 });
    this.layers[li][slot].dispose();
    this.layers[li][slot] = next;
  }

  dispose(): void {
    for (const l of this.layers) disposeLinears(l);
    this.lmHead.dispose();
  }
}
