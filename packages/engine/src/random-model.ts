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
}

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

type TensorPlan = [name: string, shape: number[], kind: "w" | "norm"];

/** Every tensor of the model, in checkpoint order, grouped by shard. */
function shardsOf(cfg: Record<string, any>, layersPerShard: number): TensorPlan[][] {
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
      t.push([`${p}.self_attn.q_proj.weight`, [qd, H], "w"], [`${p}.self_attn.k_proj.weight`, [kvd, H], "w"], [`${p}.self_attn.v_proj.weight`, [kvd, H], "w"]);
      t.push([`${p}.self_attn.o_proj.weight`, [H, qd], "w"]);
      t.push([`${p}.post_attention_layernorm.weight`, [H], "norm"]);
      t.push([`${p}.mlp.gate_proj.weight`, [I, H], "w"], [`${p}.mlp.up_proj.weight`, [I, H], "w"], [`${p}.mlp.down_proj.weight`, [H, I], "w"]);
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
  const shards = shardsOf(cfg, layersPerShard);
  const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const biggest = Math.max(...shards.flat().map(([, shape]) => numel(shape)));
  const tmp = join(dirname(dir), `.${basename(dir)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const filler = makeFiller(onGpu, biggest);
  const ones = new Uint16Array(cfg.hidden_size as number).fill(0x3c00); // fp16 1.0
  const bound = std * Math.sqrt(3); // uniform on [-b, b) has standard deviation b / sqrt(3)
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
        shards[s].map(([name, shape]) => ({ name, dtype: "float16", shape })),
        { format: "pt" },
      );
      for (const [name, shape, kind] of shards[s]) {
        const n = numel(shape);
        await w.write(name, kind === "w" ? filler.fill(n, tensorSeed++, bound) : ones);
        weightMap[name] = file;
        bytes += n * 2;
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
