import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type NamedTensor, openCheckpoint } from "@marlin/format";
import { LINEAR_NAMES, type LinearSource, linearToF32, type ModelSources } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The fixture model (field notes §8): ../shared/models/tiny-llama from the repo root, or MARLIN_TINY_LLAMA. */
export function tinyLlamaDir(): string {
  // MARLIN_FIXTURE_DIR: tools/gpu/prepare.sh --with-model carries the fixture there.
  const env = process.env.MARLIN_TINY_LLAMA ?? process.env.MARLIN_FIXTURE_DIR;
  if (env) return env;
  const candidates = [resolve(here, "../../../../shared/models/tiny-llama"), resolve(here, "../../../shared/models/tiny-llama")];
  return candidates.find((p) => existsSync(join(p, "config.json"))) ?? candidates[0];
}

export const hasTinyLlama = (): boolean => existsSync(join(tinyLlamaDir(), "model.safetensors"));

/**
 * The first 1/`part` of tiny-llama's eval.txt lines (1/16: ~17 windows of 256 tokens); the whole file
 * takes minutes per run on 2 cores, so the tensor-parallel comparisons score a slice.
 */
export function evalTextSlice(part = 16): string {
  const lines = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8").split("\n");
  return lines.slice(0, Math.ceil(lines.length / part)).join("\n");
}

/** Every tensor of the checkpoint in `dir`, as stored, by name. */
export async function readTensors(dir: string): Promise<Map<string, NamedTensor>> {
  const ck = await openCheckpoint(dir);
  const raw = new Map<string, NamedTensor>();
  for (const name of ck.tensors.keys()) raw.set(name, await ck.read(name));
  await ck.close();
  return raw;
}

/**
 * Where each token row of a packed batch lands in a paged KV cache: sequences of `lens` tokens laid
 * out back to back, `tables` holding `maxBlocks` block ids per sequence.
 */
export function pagedRows(lens: number[], tables: Int32Array, maxBlocks: number, blockSize: number) {
  const T = lens.reduce((a, b) => a + b, 0);
  const pos = new Int32Array(T);
  const seqOf = new Int32Array(T);
  const slots = new Int32Array(T);
  let r = 0;
  lens.forEach((len, s) => {
    for (let p = 0; p < len; p++, r++) {
      pos[r] = p;
      seqOf[r] = s;
      slots[r] = tables[s * maxBlocks + Math.floor(p / blockSize)] * blockSize + (p % blockSize);
    }
  });
  return { pos, seqOf, slots };
}

/** The same weights with every linear layer dequantized to dense fp32 (the reference of quantized runs). */
export function dequantizedSources(q: ModelSources): ModelSources {
  return {
    ...q,
    layers: q.layers.map((l) => ({
      ...l,
      linears: Object.fromEntries(
        LINEAR_NAMES.map((n) => {
          const s = l.linears[n];
          return [n, { kind: "dense", n: s.n, k: s.k, weight: { dtype: "float32", shape: [s.n, s.k], data: linearToF32(s) }, bias: s.bias, name: s.name } satisfies LinearSource];
        }),
      ) as ModelSources["layers"][number]["linears"],
    })),
  };
}
