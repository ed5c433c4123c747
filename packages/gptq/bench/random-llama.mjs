// A Llama-architecture model directory with random fp16 weights, and a random-text calibration
// file, for speed runs at real shapes (nothing committed: both are made where the run happens).
//
// Weights are drawn on the GPU (the engine's fillUniform op, one seed per tensor), uniform with
// standard deviation 0.02 (the spread of Hugging Face's N(0, 0.02) init) so activations stay in
// fp16 range through all layers; norms are 1. Written as sharded safetensors with an index, like
// Hugging Face checkpoints; the tokenizer is the tiny-llama fixture's (its ids are all < vocab).
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "@marlin/core";
import { gpuOps } from "@marlin/engine";
import { SafetensorsWriter } from "@marlin/format";
import { DeviceBuffer } from "@marlin/kernel";

/** Llama-2-7B's shape; `layers` may be fewer for a short run. */
export function llama2Config(layers) {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: layers,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    head_dim: 128,
    vocab_size: 32000,
    max_position_embeddings: 4096,
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

/** Every tensor of the model as [name, shape, kind], in checkpoint order, grouped by shard. */
function shardsOf(cfg, layersPerShard) {
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const L = cfg.num_hidden_layers;
  const shards = [];
  for (let s = 0; s * layersPerShard < L || s === 0; s++) {
    const t = [];
    if (s === 0) t.push(["model.embed_tokens.weight", [cfg.vocab_size, H], "w"]);
    for (let li = s * layersPerShard; li < Math.min(L, (s + 1) * layersPerShard); li++) {
      const p = `model.layers.${li}`;
      t.push([`${p}.input_layernorm.weight`, [H], "norm"]);
      for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"]) t.push([`${p}.self_attn.${n}.weight`, [H, H], "w"]);
      t.push([`${p}.post_attention_layernorm.weight`, [H], "norm"]);
      t.push([`${p}.mlp.gate_proj.weight`, [I, H], "w"], [`${p}.mlp.up_proj.weight`, [I, H], "w"], [`${p}.mlp.down_proj.weight`, [H, I], "w"]);
    }
    shards.push(t);
  }
  shards[shards.length - 1].push(["model.norm.weight", [H], "norm"], ["lm_head.weight", [cfg.vocab_size, H], "w"]);
  return shards;
}

/**
 * Writes config.json, the tokenizer files and sharded random weights into `dir`. Returns the bytes
 * of weights written.
 */
export async function makeRandomLlama(dir, { layers = 32, seed = 1, tokenizerDir, layersPerShard = 8, std = 0.02 } = {}) {
  mkdirSync(dir, { recursive: true });
  const cfg = llama2Config(layers);
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(cfg, null, 2)}\n`);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(dir, f));
  const shards = shardsOf(cfg, layersPerShard);
  const numel = (shape) => shape.reduce((a, b) => a * b, 1);
  const biggest = Math.max(...shards.flat().map(([, shape]) => numel(shape)));
  const dev = DeviceBuffer.alloc(biggest * 2);
  const host = new Uint16Array(biggest);
  const ones = new Uint16Array(cfg.hidden_size).fill(0x3c00); // fp16 1.0
  const bound = std * Math.sqrt(3); // uniform on [-b, b) has standard deviation b / sqrt(3)
  const ops = gpuOps();
  const weightMap = {};
  let bytes = 0;
  let tensorSeed = seed * 1000003;
  try {
    for (let s = 0; s < shards.length; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
      const w = await SafetensorsWriter.create(
        join(dir, file),
        shards[s].map(([name, shape]) => ({ name, dtype: "float16", shape })),
        { format: "pt" },
      );
      for (const [name, shape, kind] of shards[s]) {
        const n = numel(shape);
        let data = ones;
        if (kind === "w") {
          ops.fillUniform(dev, n, tensorSeed++, -bound, bound);
          data = dev.download(host.subarray(0, n));
        }
        await w.write(name, data);
        weightMap[name] = file;
        bytes += n * 2;
      }
      await w.close();
    }
  } finally {
    dev.free();
  }
  writeFileSync(join(dir, "model.safetensors.index.json"), `${JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2)}\n`);
  return bytes;
}

/** `lines` lines of random lowercase words (seeded): calibration text with no structure at all. */
export function writeRandomText(file, { lines = 12000, wordsPerLine = 40, seed = 1 } = {}) {
  const rng = new Rng(seed);
  const out = [];
  for (let l = 0; l < lines; l++) {
    const words = [];
    const count = rng.int(wordsPerLine / 2, wordsPerLine * 1.5);
    for (let i = 0; i < count; i++) {
      let w = "";
      const len = rng.int(1, 10);
      for (let c = 0; c < len; c++) w += String.fromCharCode(97 + rng.int(0, 26));
      words.push(w);
    }
    out.push(`${words.join(" ")}.`);
  }
  writeFileSync(file, `${out.join("\n")}\n`);
}
