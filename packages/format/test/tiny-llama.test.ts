import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { f16ToF32, openCheckpoint } from "../src/index.js";

// MARLIN_FIXTURE_DIR: where tools/gpu/prepare.sh --with-model puts the fixture on the GPU machine.
const dir = process.env.MARLIN_FIXTURE_DIR ?? resolve(__dirname, "../../../../shared/models/tiny-llama");
const present = existsSync(resolve(dir, "config.json")) && existsSync(resolve(dir, "model.safetensors"));
if (!present) console.log(`tiny-llama fixture not found at ${dir}: skipping its read test`);

/** Every tensor a Llama checkpoint holds, with the shape config.json implies (torch [out, in]). */
function expectedTensors(cfg: any): Map<string, number[]> {
  const h = cfg.hidden_size;
  const inter = cfg.intermediate_size;
  const heads = cfg.num_attention_heads;
  const kv = cfg.num_key_value_heads ?? heads;
  const hd = cfg.head_dim ?? h / heads;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [cfg.vocab_size, h]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    m.set(`${p}.self_attn.q_proj.weight`, [heads * hd, h]);
    m.set(`${p}.self_attn.k_proj.weight`, [kv * hd, h]);
    m.set(`${p}.self_attn.v_proj.weight`, [kv * hd, h]);
    m.set(`${p}.self_attn.o_proj.weight`, [h, heads * hd]);
    m.set(`${p}.mlp.gate_proj.weight`, [inter, h]);
    m.set(`${p}.mlp.up_proj.weight`, [inter, h]);
    m.set(`${p}.mlp.down_proj.weight`, [h, inter]);
    m.set(`${p}.input_layernorm.weight`, [h]);
    m.set(`${p}.post_attention_layernorm.weight`, [h]);
  }
  m.set("model.norm.weight", [h]);
  if (!cfg.tie_word_embeddings) m.set("lm_head.weight", [cfg.vocab_size, h]);
  return m;
}

describe.skipIf(!present)("tiny-llama fixture", () => {
  it("reads every tensor; names, shapes and dtypes match config.json", async () => {
    const cfg = JSON.parse(readFileSync(resolve(dir, "config.json"), "utf8"));
    const want = expectedTensors(cfg);
    const ck = await openCheckpoint(dir);
    try {
      expect([...ck.tensors.keys()].sort()).toEqual([...want.keys()].sort());
      let params = 0;
      for (const [name, shape] of want) {
        const info = ck.tensors.get(name)!;
        expect(info.shape, name).toEqual(shape);
        expect(info.dtype, name).toBe("float16");
        const t = await ck.read(name);
        expect(t.data).toBeInstanceOf(Uint16Array);
        expect(t.data.length).toBe(shape.reduce((a, b) => a * b, 1));
        const f = f16ToF32(t.data as Uint16Array);
        let sumsq = 0;
        for (let i = 0; i < f.length; i++) {
          if (!Number.isFinite(f[i])) expect.fail(`${name}[${i}] is ${f[i]}`);
          sumsq += f[i] * f[i];
        }
        expect(sumsq, `${name} is all zeros`).toBeGreaterThan(0);
        params += f.length;
      }
      console.log(`tiny-llama: ${want.size} tensors, ${params} parameters`);
      expect(params).toBeGreaterThan(12_000_000);
    } finally {
      await ck.close();
    }
  });
});
