/**
 * safetensors files: valid small files (random dtypes and shapes), then byte edits, header JSON
 * edits (reserialized with a correct length), duplicate keys, or length-prefix edits. An accepted
 * file must read every tensor.
 */
import type { Rng } from "@marlin/core";
import { byteSize, SafetensorsFile, serializeSafetensors, TENSOR_DTYPES, type TensorDType } from "@marlin/format";
import { chance, edgeNumber, jsonWithDuplicateKey, mutateBytes, mutateJson, pick } from "../mutate.js";
import type { Target } from "./types.js";

function validFile(rng: Rng): Uint8Array {
  const tensors: Record<string, { dtype: TensorDType; shape: number[]; data: Uint8Array }> = {};
  const count = rng.int(0, 5);
  for (let t = 0; t < count; t++) {
    const dtype = pick(rng, TENSOR_DTYPES);
    const shape = Array.from({ length: rng.int(0, 4) }, () => rng.int(0, 6));
    const numel = shape.reduce((a, d) => a * d, 1);
    const bytes = byteSize(dtype, numel);
    if (bytes < 0) continue; // sub-byte dtypes need whole bytes
    const data = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) data[i] = rng.int(0, 256);
    tensors[pick(rng, ["w", "model.layers.0.mlp.up_proj.weight", "b", "s", "qweight", "é", `t${t}`])] = { dtype, shape, data };
  }
  const meta = chance(rng, 0.3) ? { format: "pt" } : undefined;
  return serializeSafetensors(tensors, meta);
}

function withHeader(file: Uint8Array, header: string): Uint8Array {
  const n = new DataView(file.buffer, file.byteOffset).getUint32(0, true);
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + (file.length - 8 - n));
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(file.subarray(8 + n), 8 + text.length);
  return out;
}

function headerOf(file: Uint8Array): Record<string, unknown> {
  const n = new DataView(file.buffer, file.byteOffset).getUint32(0, true);
  return JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
}

function mutated(rng: Rng): Uint8Array {
  const file = validFile(rng);
  switch (rng.int(0, 6)) {
    case 0:
      return mutateBytes(rng, file);
    case 1:
    case 2:
      return withHeader(file, JSON.stringify(mutateJson(rng, headerOf(file))));
    case 3: {
      const h = headerOf(file);
      if (Object.keys(h).length === 0) return file;
      // The copy of the key differs (another dtype or shape), as a last-wins reader would load.
      return withHeader(file, jsonWithDuplicateKey(rng, h, (orig) => (chance(rng, 0.5) ? orig : mutateJson(rng, orig))));
    }
    case 4: {
      const out = file.slice();
      const v = edgeNumber(rng);
      const n = Number.isFinite(v) && v >= 0 && v < 2 ** 64 ? BigInt(Math.floor(v)) : BigInt(rng.int(0, 2 ** 31));
      new DataView(out.buffer).setBigUint64(0, n, true);
      return out;
    }
    default:
      return file;
  }
}

export const safetensorsTarget: Target = {
  name: "safetensors",
  async run(rng) {
    const f = await SafetensorsFile.fromBytes(mutated(rng), "fuzz.safetensors");
    await f.readAll();
    await f.close();
  },
};
