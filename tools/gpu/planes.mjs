// Byte planes of a safetensors file, for the GPU carry: the header, then every tensor byte's high
// halves, then the low halves. fp16's high bytes (sign, exponent) repeat far more than the low
// ones, so xz packs the planes ~1.6 MB smaller than the file (the carry limit is 64 MiB).
//   node tools/gpu/planes.mjs split model.safetensors model.planes
//   node tools/gpu/planes.mjs join model.planes model.safetensors
import { readFileSync, writeFileSync } from "node:fs";

const [mode, from, to] = process.argv.slice(2);
if (!["split", "join"].includes(mode) || !from || !to) throw new Error("usage: planes.mjs split|join FROM TO");
const b = readFileSync(from);
const head = 8 + Number(b.readBigUInt64LE(0));
const body = b.length - head;
if (body % 2) throw new Error(`${from}: an odd tensor byte count (${body}), not 16-bit planes`);
const out = Buffer.allocUnsafe(b.length);
b.copy(out, 0, 0, head);
const half = body / 2;
for (let i = 0; i < half; i++) {
  if (mode === "split") {
    out[head + half + i] = b[head + 2 * i]; // low byte
    out[head + i] = b[head + 2 * i + 1]; // high byte
  } else {
    out[head + 2 * i] = b[head + half + i];
    out[head + 2 * i + 1] = b[head + i];
  }
}
writeFileSync(to, out);
