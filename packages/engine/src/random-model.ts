/**
 * A Llama-architecture model directory with random fp16 weights, for speed runs at real shapes
 * (Llama-2-7B by default, or any smaller shape for CPU checks) with nothing downloaded or committed.
 *
 * Weights are uniform with standard deviation 0.02 (the spread of Hugging Face's N(0, 0.02) init),
 * so activations stay in fp16 range through all layers; norms are 1. Drawn on the GPU (fillUniform,
 * one seed per tensor) when there is one, else on the CPU (seeded Rng). Written as sharded
 * safetensors with an index like Hugging Face checkpoints, into a hidden sibling folder that is
 * renamed into place at the end (an interrupted run leaves no half-written model). The tokenizer
 * files are copied from `tokenizerDir` (its ids must fit the vocabulary).
 *
 * With `format: "marlin"` the linear layers are written as a Marlin 4-bit checkpoint (group 128,
 * `checkpoint_format: marlin`) of random packed nibbles and scales, drawn directly: a model of the
 * same shape for speed runs in seconds, where quantizing 7B weights on the CPU takes many minutes.
 * Its weights are not a quantization of the fp16 model's (speed does not depend on the values).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InvalidArgumentError, Rng } from "@marlin/core";
import { f32ToF16, SafetensorsWriter } from "@marlin/format";
import { DeviceBuffer, hasGpu } from "@marlin/kernel";
import { gpuOps } from "./gpu/gpu-ops.js";

export interface RandomLlamaShape {
  /** Decoder layers (32). */
  layers?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  heads?: number;
  kvHeads?: number;
  vocabSize?: number;
  maxPositions?: number;
}

export interface RandomLlamaOptions extends RandomLlamaShape {
  seed?: number;
  /** Where tokenizer.json (and tokenizer_config.json) are copied from. */
  tokenizerDir?: string;
  layersPerShard?: number;
  std?: number;
  /** Where the weights are drawn ("auto": the GPU when present). */
  device?: "auto" | "cpu" | "cuda";
  /** fp16 linear layers (default), or random Marlin 4-bit ones (group 128). */
  format?: "fp16" | "marlin";
}

const MARLIN_GROUP = 128;

const LLAMA2_7B = { layers: 32, hiddenSize: 4096, intermediateSize: 11008, heads: 32, kvHeads: 32, vocabSize: 32000, maxPositions: 4096 };

function posInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** config.json of a Llama-2-7B-shaped model (fields of `shape` override). */
export function llama2Config(layers = LLAMA2_7B.layers, shape: RandomLlamaShape = {}): Record<string, unknown> {
  const s = { ...LLAMA2_7B, layers: shape.layers ?? layers };
  for (const k of Object.keys(LLAMA2_7B) as (keyof typeof LLAMA2_7B)[]) if (k !== "layers" && shape[k] !== undefined) s[k] = shape[k]!;
  for (const [k, v] of Object.entries(s)) posInt(k, v);
  if (s.hiddenSize % s.heads) throw new InvalidArgumentError(`hiddenSize ${s.hiddenSize} is not a multiple of heads ${s.heads}`);
  if (s.heads % s.kvHeads) throw new InvalidArgumentError(`heads ${s.heads} is not a multiple of kvHeads ${s.kvHeads}`);
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.hiddenSize,
    intermediate_size: s.intermediateSize,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hiddenSize / s.heads,
    vocab_size: s.vocabSize,
    max_position_embeddings: s.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float16",
  };
}

type TensorPlan = [name: string, shape: number[], kind: "w" | "norm" | "qweight" | "scales"];

/** A linear layer's tensors: `.weight` [n, k] fp16, or Marlin's `.B` int32 [k/16, 2n] and `.s` fp16 [k/128, n]. */
function linear(name: string, n: number, k: number, marlin: boolean): TensorPlan[] {
  if (!marlin) return [[`${name}.weight`, [n, k], "w"]];
  if (k % MARLIN_GROUP || n % 64) throw new InvalidArgumentError(`${name}: Marlin needs k % ${MARLIN_GROUP} == 0 and n % 64 == 0, got k=${k}, n=${n}`);
  return [
    [`${name}.B`, [k / 16, 2 * n], "qweight"],
    [`${name}.s`, [k / MARLIN_GROUP, n], "scales"],
  ];
}

/** Every tensor of the model, in checkpoint order, grouped by shard. */
function shardsOf(cfg: Record<string, any>, layersPerShard: number, marlin: boolean): TensorPlan[][] {
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const L = cfg.num_hidden_layers;
  const qd = cfg.num_attention_heads * cfg.head_dim;
  const kvd = cfg.num_key_value_heads * cfg.head_dim;
  const shards: TensorPlan[][] = [];
  for (let s = 0; s * layersPerShard < L || s === 0; s++) {
    const t: TensorPlan[] = [];
    if (s === 0) t.push(["model.embed_tokens.weight", [cfg.vocab_size, H], "w"]);
    for (let li = s * layersPerShard; li < Math.min(L, (s + 1) * layersPerShard); li++) {
      const p = `model.layers.${li}`;
      t.push([`${p}.input_layernorm.weight`, [H], "norm"]);
      const a = `${p}.self_attn`;
      t.push(...linear(`${a}.q_proj`, qd, H, marlin), ...linear(`${a}.k_proj`, kvd, H, marlin), ...linear(`${a}.v_proj`, kvd, H, marlin), ...linear(`${a}.o_proj`, H, qd, marlin));
      t.push([`${p}.post_attention_layernorm.weight`, [H], "norm"]);
      t.push(...linear(`${p}.mlp.gate_proj`, I, H, marlin), ...linear(`${p}.mlp.up_proj`, I, H, marlin), ...linear(`${p}.mlp.down_proj`, H, I, marlin));
    }
    shards.push(t);
  }
  shards[shards.length - 1].push(["model.norm.weight", [H], "norm"], ["lm_head.weight", [cfg.vocab_size, H], "w"]);
  return shards;
}

/** The largest token id + 1 that tokenizer.json can produce. */
function tokenizerVocab(file: string): number {
  const tk = JSON.parse(readFileSync(file, "utf8"));
  const vocab = tk.model?.vocab;
  let n = Array.isArray(vocab) ? vocab.length : vocab ? Math.max(-1, ...Object.values<number>(vocab)) + 1 : 0;
  for (const a of tk.added_tokens ?? []) if (typeof a.id === "number") n = Math.max(n, a.id + 1);
  return n;
}

/** Random 32-bit words (xorshift32, seeded): eight uniform 4-bit weights each. */
function randomWords(count: number, seed: number): Int32Array {
  const out = new Int32Array(count);
  let x = Math.imul(seed + 1, 0x9e3779b1) | 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

/** A uniform fill source: the GPU's fillUniform op, or a seeded Rng on the CPU. */
function makeFiller(onGpu: boolean, maxCount: number): { fill(n: number, seed: number, bound: number): Uint16Array; free(): void } {
  if (onGpu) {
    const dev = DeviceBuffer.alloc(maxCount * 2);
    const host = new Uint16Array(maxCount);
    const ops = gpuOps();
    return {
      fill(n, seed, bound) {
        ops.fillUniform(dev, n, seed, -bound, bound);
        return dev.download(host.subarray(0, n));
      },
      free: () => dev.free(),
    };
  }
  return {
    fill(n, seed, bound) {
      const rng = new Rng(seed);
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = (2 * rng.next() - 1) * bound;
      return f32ToF16(f);
    },
    free() {},
  };
}

/** Writes config.json, the tokenizer files and sharded random weights into `dir`; returns the weight bytes. */
export async function makeRandomLlama(dir: string, opts: RandomLlamaOptions = {}): Promise<number> {
  const cfg = llama2Config(opts.layers, opts);
  const marlin = (opts.format ?? "fp16") === "marlin";
  if (opts.format !== undefined && opts.format !== "fp16" && opts.format !== "marlin") throw new InvalidArgumentError(`format must be fp16 or marlin, got ${opts.format}`);
  if (marlin) cfg.quantization_config = { quant_method: "gptq", checkpoint_format: "marlin", bits: 4, group_size: MARLIN_GROUP, desc_act: false, sym: true, lm_head: false };
  const layersPerShard = posInt("layersPerShard", opts.layersPerShard ?? 8);
  const std = opts.std ?? 0.02;
  if (!(std > 0 && std < 1)) throw new InvalidArgumentError(`std must be in (0, 1), got ${std}`);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new InvalidArgumentError(`${dir} exists and is not empty`);
  const tokFiles = ["tokenizer.json", "tokenizer_config.json"].filter((f) => opts.tokenizerDir && existsSync(join(opts.tokenizerDir, f)));
  if (opts.tokenizerDir) {
    if (!tokFiles.includes("tokenizer.json")) throw new InvalidArgumentError(`no tokenizer.json in ${opts.tokenizerDir}`);
    const v = tokenizerVocab(join(opts.tokenizerDir, "tokenizer.json"));
    if (v > (cfg.vocab_size as number)) throw new InvalidArgumentError(`the tokenizer has ${v} ids, more than the vocabulary ${cfg.vocab_size}`);
  }
  const device = opts.device ?? "auto";
  const onGpu = device === "cuda" || (device === "auto" && hasGpu());
  const shards = shardsOf(cfg, layersPerShard, marlin);
  const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const biggest = Math.max(...shards.flat().map(([, shape, kind]) => (kind === "w" ? numel(shape) : 0)));
  const tmp = join(dirname(dir), `.${basename(dir)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const filler = makeFiller(onGpu, biggest);
  const ones = new Uint16Array(cfg.hidden_size as number).fill(0x3c00); // fp16 1.0
  const bound = std * Math.sqrt(3); // uniform on [-b, b) has standard deviation b / sqrt(3)
  // Uniform nibbles q in 0..15 give (q - 8) a standard deviation of sqrt(21.5): scales around
  // std / sqrt(21.5) keep the dequantized weights' spread at std.
  const scale = std / Math.sqrt(21.5);
  const weightMap: Record<string, string> = {};
  let bytes = 0;
  let tensorSeed = (opts.seed ?? 1) * 1000003;
  try {
    writeFileSync(join(tmp, "config.json"), `${JSON.stringify(cfg, null, 2)}\n`);
    for (const f of tokFiles) copyFileSync(join(opts.tokenizerDir!, f), join(tmp, f));
    for (let s = 0; s < shards.length; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
      const w = await SafetensorsWriter.create(
        join(tmp, file),
        shards[s].map(([name, shape, kind]) => ({ name, dtype: kind === "qweight" ? "int32" : "float16", shape })),
        { format: "pt" },
      );
      for (const [name, shape, kind] of shards[s]) {
        const n = numel(shape);
        let data: Uint16Array | Int32Array = ones;
        if (kind === "w") data = filler.fill(n, tensorSeed++, bound);
        else if (kind === "qweight") data = randomWords(n, tensorSeed++);
        else if (kind === "scales") data = f32ToF16(Float32Array.from({ length: n }, (_, i) => scale * (0.5 + ((i * 0.618034) % 1))));
        await w.write(name, data);
        weightMap[name] = file;
        bytes += data.byteLength;
      }
      await w.close();
    }
    writeFileSync(join(tmp, "model.safetensors.index.json"), `${JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2)}\n`);
    if (existsSync(dir)) rmSync(dir, { recursive: true }); // empty, checked above
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    filler.free();
  }
  return bytes;
}
