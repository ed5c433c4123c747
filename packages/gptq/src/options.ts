/**
 * Options of a whole-model quantization run, and every check that can be made before any work or
 * write: the model directory, the bits / group / act-order / format combination against the
 * model's layer shapes and the loaders that must read the result, the calibration file and the
 * output directory. Each failure is one typed error with a one-line message.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import { totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { FormatError, InvalidArgumentError, NoDeviceError } from "@marlin/core";
import { layerDims, type ModelConfig, parseModelConfig } from "@marlin/engine";
import { FILE_LIMITS, ioError, readJsonObjectSync } from "@marlin/format";
import { DEFAULT_PERC_DAMP } from "./gptq.js";
import { gptqGpuStatus } from "./gpu.js";
import type { ClipOptions } from "./quantizer.js";
import type { PruneMethod, Sparsity } from "./sparsity.js";

export type QuantMethodName = "gptq" | "rtn";
export type OutputFormat = "marlin" | "gptq";

export interface QuantizeModelOptions {
  /** "gptq" (default) or "rtn" (round to nearest, no calibration). */
  method?: QuantMethodName;
  /** 4 (default) or 8. */
  bits?: 4 | 8;
  /** -1 (per-channel) or rows per group: 32, 64, 128 (default). */
  groupSize?: number;
  /** Quantize inputs by descending Hessian diagonal (desc_act). Default false. */
  actOrder?: boolean;
  /** With act-order: group params fixed up front, so g_idx stays monotone. Default false. */
  staticGroups?: boolean;
  /** Default true. */
  symmetric?: boolean;
  /** Relative damping of the Hessian. Default 0.1 (the reference scripts' best; classic GPTQ: 0.01). */
  percDamp?: number;
  /**
   * Hessian-weighted range search (see ClipOptions). Default on for GPTQ (off for RTN); false for
   * plain min/max. The old defaults are { percDamp: 0.01, clip: false }.
   */
  clip?: boolean | ClipOptions;
  /** "2:4": prune 2 of every 4 consecutive inputs of each output (GPTQ only, no act-order). */
  sparsity?: Sparsity;
  /** How the 2:4 mask is chosen: "sparsegpt" (default: pruned and quantized in one pass) or "magnitude". */
  prune?: PruneMethod;
  /** Calibration text (UTF-8, one passage per line). Required for GPTQ. */
  calib?: string;
  /** Calibration windows. Default 128. */
  nsamples?: number;
  /** Tokens per window. Default min(2048, max_position_embeddings). */
  seqlen?: number;
  /** Seed of the window offsets. Default 0. */
  seed?: number;
  /** "marlin" (default): our Marlin tensors (B, s); "gptq": GPTQ v1 tensors for other tools. */
  format?: OutputFormat;
  /** Replace an existing non-empty output directory. */
  force?: boolean;
  /**
   * Where GPTQ runs: "cpu" (default: the CPU model's fp32 layer passes, the float64 reference) or
   * "cuda" (the engine's GPU layer forward, Hessians on the device, gptqQuantizeGpu).
   */
  device?: "cpu" | "cuda";
}

export interface ResolvedOptions {
  method: QuantMethodName;
  bits: 4 | 8;
  groupSize: number;
  actOrder: boolean;
  staticGroups: boolean;
  symmetric: boolean;
  percDamp: number;
  clip: boolean | ClipOptions;
  sparsity?: Sparsity;
  prune?: PruneMethod;
  calib?: string;
  nsamples: number;
  seqlen: number;
  seed: number;
  format: OutputFormat;
  force: boolean;
  device: "cpu" | "cuda";
  modelDir: string;
  outDir: string;
  /** config.json as read (copied to the output with quantization_config added). */
  rawConfig: Record<string, unknown>;
  config: ModelConfig;
}

/** Group sizes the Marlin kernel runs. */
export const MARLIN_GROUP_SIZES = [-1, 32, 64, 128] as const;

/** Every linear layer's (name, k inputs, n outputs) of one decoder layer. */
export function linearShapes(c: ModelConfig): { name: string; k: number; n: number }[] {
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  return [
    { name: "self_attn.q_proj", k: c.hiddenSize, n: qd },
    { name: "self_attn.k_proj", k: c.hiddenSize, n: kvd },
    { name: "self_attn.v_proj", k: c.hiddenSize, n: kvd },
    { name: "self_attn.o_proj", k: qd, n: c.hiddenSize },
    { name: "mlp.gate_proj", k: c.hiddenSize, n: c.intermediateSize },
    { name: "mlp.up_proj", k: c.hiddenSize, n: c.intermediateSize },
    { name: "mlp.down_proj", k: c.intermediateSize, n: c.hiddenSize },
  ];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isRegularFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * The output's nearest existing ancestor must be writable: a read-only file system (EROFS) or a
 * directory without permission (EACCES) is an IoError naming it before any work, not after.
 */
function checkWritable(out: string): void {
  let dir = existsSync(out) ? out : dirname(out);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw ioError(e, "write into this directory", dir);
  }
}

/** The most calibration windows a run takes (each is one JS object; the text is tokenized whole). */
export const MAX_SAMPLES = 1 << 20;

/**
 * Calibration tokens must fit in memory: nsamples * seqlen tokens of activations (fp32 hidden
 * state, q/k/v, attention output, MLP) on the host, and a JS number per token on the V8 heap
 * while the windows are assembled. Refused before the model is read.
 */
function checkCalibrationMemory(config: ModelConfig, nsamples: number, seqlen: number): void {
  const { H, qd, qkvN, I } = layerDims(config);
  const tokens = nsamples * seqlen;
  const bytes = tokens * 4 * (3 * H + qkvN + qd + 3 * I);
  const heap = tokens * 16;
  const limit = getHeapStatistics().heap_size_limit;
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  if (bytes > totalmem() || heap > limit / 2)
    bad(
      `${nsamples} samples x ${seqlen} tokens = ${tokens} calibration tokens need about ${gib(bytes)} of activations ` +
        `(this machine has ${gib(totalmem())}) and ${gib(heap)} of JS heap (limit ${gib(limit)}); use fewer --samples or a shorter --seqlen`,
    );
}

function bad(msg: string): never {
  throw new InvalidArgumentError(msg);
}

/** Reads and checks the model directory: config.json, Llama family, not quantized, has safetensors. */
export function checkModelDir(modelDir: string): { config: ModelConfig; rawConfig: Record<string, unknown> } {
  if (!existsSync(modelDir)) throw new FormatError(`model directory ${modelDir} does not exist`, { file: modelDir });
  if (!isDir(modelDir)) throw new FormatError(`${modelDir} is not a directory`, { file: modelDir });
  const file = resolve(modelDir, "config.json");
  if (!existsSync(file)) throw new FormatError(`${modelDir} has no config.json (not a model directory)`, { file });
  const raw = readJsonObjectSync(file, FILE_LIMITS.json); // a FIFO or device is refused, not read
  const config = parseModelConfig(raw, file);
  if (config.quantization) throw new FormatError(`${modelDir} is already quantized (config.json has quantization_config)`, { file });
  const weights = readdirSync(modelDir).filter((f) => f.endsWith(".safetensors"));
  if (weights.length === 0) throw new FormatError(`${modelDir} has no .safetensors weights`, { file: modelDir });
  // A FIFO or device named *.safetensors is refused here, before any work (it would never be read).
  for (const f of weights)
    if (!isRegularFile(resolve(modelDir, f))) throw new FormatError("is not a regular file", { file: resolve(modelDir, f) });
  return { config, rawConfig: raw };
}

/** Resolves defaults and checks everything that can be checked before work starts. */
export function resolveQuantizeOptions(modelDir: string, outDir: string, o: QuantizeModelOptions = {}): ResolvedOptions {
  const { config, rawConfig } = checkModelDir(modelDir);
  const method = o.method ?? "gptq";
  if (method !== "gptq" && method !== "rtn") bad(`method must be "gptq" or "rtn", got ${JSON.stringify(method)}`);
  const format = o.format ?? "marlin";
  if (format !== "marlin" && format !== "gptq") bad(`format must be "marlin" or "gptq", got ${JSON.stringify(format)}`);
  const bits = o.bits ?? 4;
  if (bits !== 4 && bits !== 8) bad(`bits must be 4 or 8, got ${String(bits)}`);
  const groupSize = o.groupSize ?? 128;
  if (!(groupSize === -1 || (Number.isInteger(groupSize) && groupSize > 0))) bad(`group size must be -1 (per-channel) or a positive integer, got ${String(groupSize)}`);
  const actOrder = o.actOrder ?? false;
  const staticGroups = o.staticGroups ?? false;
  const symmetric = o.symmetric ?? true;
  if (staticGroups && !actOrder) bad("static groups only apply with act-order");
  const percDamp = o.percDamp ?? DEFAULT_PERC_DAMP;
  if (!(Number.isFinite(percDamp) && percDamp >= 0 && percDamp < 1)) bad(`damping must be a number in [0, 1), got ${String(percDamp)}`);
  const nsamples = o.nsamples ?? 128;
  if (!Number.isInteger(nsamples) || nsamples <= 0) bad(`samples must be a positive integer, got ${String(nsamples)}`);
  if (nsamples > MAX_SAMPLES) bad(`samples ${nsamples} exceeds ${MAX_SAMPLES} calibration windows`);
  const maxPos = config.maxPositionEmbeddings;
  const seqlen = o.seqlen ?? Math.min(2048, maxPos);
  if (!Number.isInteger(seqlen) || seqlen < 2) bad(`seqlen must be an integer >= 2, got ${String(seqlen)}`);
  const clip = o.clip ?? method === "gptq";
  if (typeof clip === "object" && clip !== null && clip.score !== undefined && clip.score !== "diag" && clip.score !== "full")
    bad(`clip score must be "diag" or "full", got ${JSON.stringify(clip.score)}`);
  let sparsity: Sparsity | undefined;
  let prune: PruneMethod | undefined;
  if (o.sparsity === undefined) {
    if (o.prune !== undefined) bad(`prune (${String(o.prune)}) needs sparsity 2:4 (--sparsity 2:4)`);
  } else {
    if (o.sparsity !== "2:4") bad(`sparsity must be "2:4", got ${JSON.stringify(o.sparsity)}`);
    sparsity = o.sparsity;
    prune = o.prune ?? "sparsegpt";
    if (prune !== "sparsegpt" && prune !== "magnitude") bad(`prune must be "sparsegpt" or "magnitude", got ${JSON.stringify(prune)}`);
    if (method !== "gptq") bad("2:4 sparsity needs method gptq (pruning uses the calibration Hessians)");
    if (actOrder) bad("2:4 sparsity with act-order is not supported (the 2:4 quads follow the original input order); drop --act-order");
  }
  if (seqlen > maxPos) bad(`seqlen ${seqlen} exceeds the model's max_position_embeddings ${maxPos}`);
  if (method === "gptq") checkCalibrationMemory(config, nsamples, seqlen);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) bad(`seed must be a non-negative integer, got ${String(seed)}`);

  // The combination against the loaders that must read the output.
  if (format === "marlin") {
    if (bits !== 4) bad("8-bit layers cannot be written as a Marlin checkpoint (its B/s tensors are 4-bit); use --format gptq");
    if (!symmetric) bad("asymmetric layers cannot be written as a Marlin checkpoint (it has no zero points); use --sym or --format gptq");
    if (actOrder && groupSize > 0 && !staticGroups)
      bad("act-order with groups needs g_idx, which a Marlin checkpoint cannot hold; add --static-groups or use --format gptq");
    if (!(MARLIN_GROUP_SIZES as readonly number[]).includes(groupSize)) bad(`group size ${groupSize} has no Marlin kernel (one of ${MARLIN_GROUP_SIZES.join(", ")})`);
    // A 2:4 Marlin checkpoint holds @marlin/sparse's packed layout: 4-bit symmetric, g128 or per-channel.
    if (sparsity && groupSize !== 128 && groupSize !== -1)
      bad(`2:4 sparsity in a Marlin checkpoint needs group size 128 or -1 (the sparse layout), got ${groupSize}; use --format gptq for dense tensors`);
  }
  for (const { name, k, n } of linearShapes(config)) {
    if (groupSize > 0 && k % groupSize !== 0) bad(`group size ${groupSize} does not divide k = ${k} of ${name}`);
    if (sparsity && k % 4 !== 0) bad(`2:4 sparsity needs k % 4 == 0; ${name} has k = ${k}`);
    if (format === "marlin" && (k % 128 !== 0 || n % 64 !== 0))
      bad(`${name} is ${k} x ${n}; the Marlin kernel needs k % 128 == 0 and n % 64 == 0 (use --format gptq)`);
    const per = 32 / bits;
    if (format === "gptq" && (k % per !== 0 || n % per !== 0)) bad(`${name} is ${k} x ${n}; GPTQ packing needs k and n multiples of ${per}`);
  }

  const device = o.device ?? "cpu";
  if (device !== "cpu" && device !== "cuda") bad(`device must be "cpu" or "cuda", got ${JSON.stringify(device)}`);
  if (device === "cuda" && method === "gptq") {
    if (typeof clip === "object" && clip.score === "full") bad('clip score "full" is not implemented on the GPU path (use "diag", the default, or --device cpu)');
    const st = gptqGpuStatus();
    if (!st.available) throw new NoDeviceError(`--device cuda: ${st.reason}`);
  }

  let calib: string | undefined;
  if (method === "gptq") {
    if (o.calib === undefined) bad("GPTQ needs a calibration text file (--calib <file>)");
    calib = resolve(o.calib);
    if (!isRegularFile(calib)) bad(`calibration file ${o.calib} does not exist or is not a regular file`);
    if (!existsSync(resolve(modelDir, "tokenizer.json"))) bad(`${modelDir} has no tokenizer.json, needed to tokenize the calibration text`);
  }

  const out = resolve(outDir);
  const src = resolve(modelDir);
  if (out === src) bad("the output directory must differ from the model directory");
  if (existsSync(out)) {
    if (!isDir(out)) bad(`output ${outDir} exists and is not a directory`);
    if (readdirSync(out).length > 0 && !o.force) bad(`output directory ${outDir} exists and is not empty (use --force to replace it)`);
  }
  if (src.startsWith(`${out}/`)) bad("the output directory must not contain the model directory");
  if (!isDir(dirname(out)) && existsSync(dirname(out))) bad(`${dirname(out)} is not a directory`);
  checkWritable(out);
  return {
    method,
    bits,
    groupSize,
    actOrder,
    staticGroups,
    symmetric,
    percDamp,
    clip,
    ...(sparsity ? { sparsity, prune } : {}),
    calib,
    nsamples,
    seqlen,
    seed,
    format,
    force: o.force ?? false,
    device,
    modelDir: src,
    outDir: out,
    rawConfig,
    config,
  };
}
