/**
 * Issue 14, one test per defect on the format side: each bad input gives its typed error (the
 * repro of the issue), before any large allocation, and nothing is written.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, IoError, Rng, runSeed, ShapeError } from "@marlin/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  duplicateJsonKey,
  f32ToBf16,
  fromAwq,
  fromGptq,
  ioError,
  loadQuantizedLayer,
  openRegularFile,
  parseQuantizationConfig,
  quantizeRtn,
  readRegularFileSync,
  SafetensorsFile,
  SafetensorsWriter,
  serializeSafetensors,
  type Tensor,
  type TensorSource,
  toAwq,
  toGptq,
} from "../src/index.js";

const seed = runSeed();
console.log(`hardening seed ${seed}`);
const rng = new Rng(seed);
const work = mkdtempSync(join(tmpdir(), "format-hardening-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const hasMkfifo = spawnSync("mkfifo", [join(work, "probe")]).status === 0;
if (!hasMkfifo) console.log("FIFO tests skipped: no mkfifo command");

/** A small random layer (fresh each run) quantized to 4 bits, group 32. */
function layer(k = 64, n = 32, bits: 4 | 8 = 4, symmetric = true, groupSize = 32) {
  const w = new Float32Array(k * n);
  rng.fillNormal(w, 0.05);
  return quantizeRtn(w, k, n, { bits, groupSize, symmetric });
}

function header(json: string, data = new Uint8Array(0)): Uint8Array {
  const text = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

describe("safetensors: duplicate names (JSON.parse keeps the last)", () => {
  it("a tensor named twice is refused", async () => {
    const bytes = header('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4));
    await expect(SafetensorsFile.fromBytes(bytes, "dup.safetensors")).rejects.toThrow(FormatError);
    await expect(SafetensorsFile.fromBytes(bytes, "dup.safetensors")).rejects.toThrow(/key "w" twice/);
  });
  it("a field given twice inside one entry (dtype) is refused", async () => {
    const bytes = header('{"w":{"dtype":"F16","dtype":"I16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4));
    await expect(SafetensorsFile.fromBytes(bytes)).rejects.toThrow(/key "dtype" twice/);
  });
  it("keys equal after unescaping are one key; distinct keys pass", () => {
    expect(duplicateJsonKey('{"a":1,"\\u0061":2}')).toBe("a");
    expect(duplicateJsonKey('{"a":{"a":1},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
  });
});

function source(tensors: Record<string, Tensor>): TensorSource {
  const m = new Map(Object.entries(tensors));
  return {
    tensors: new Map([...m].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, byteOffset: 0, byteLength: t.data.byteLength }])),
    metadata: {},
    read: async (name) => m.get(name)!,
    close: async () => {},
  };
}

describe("GPTQ / AWQ tensors", () => {
  const cfg = { bits: 4 as const, groupSize: 32, sym: true, version: 1 as const };
  it("scales of [n, groups] or 1-D (the right element count, the wrong layout) are refused", () => {
    const g = toGptq(layer());
    const groups = g.scales.shape[0];
    const n = g.scales.shape[1];
    expect(() => fromGptq({ ...g, scales: { ...g.scales, shape: [n, groups] } }, cfg)).toThrow(ShapeError);
    expect(() => fromGptq({ ...g, scales: { ...g.scales, shape: [groups * n] } }, cfg)).toThrow(/scales has shape \[\d+\], expected/);
    expect(() => fromGptq({ ...g, g_idx: { ...g.g_idx, shape: [1, g.g_idx.shape[0]] } }, cfg)).toThrow(/g_idx has shape/);
    expect(() => fromGptq({ ...g, qzeros: { ...g.qzeros, shape: [g.qzeros.shape[1], g.qzeros.shape[0]] } }, cfg)).toThrow(/qzeros has shape/);
  });
  it("Inf or NaN scales are refused", () => {
    const g = toGptq(layer());
    expect(() => fromGptq({ ...g, scales: { ...g.scales, data: new Uint16Array(g.scales.data.length).fill(0x7c00) } }, cfg)).toThrow(/scale 0 is infinite/);
    const nan = (g.scales.data as Uint16Array).slice();
    nan[5] = 0x7e00;
    expect(() => fromGptq({ ...g, scales: { ...g.scales, data: nan } }, cfg)).toThrow(/scale 5 is NaN/);
  });
  it("bf16 / fp32 scales that fp16 cannot hold (overflow, or a nonzero flushed to 0) are refused", () => {
    const g = toGptq(layer());
    const f = new Float32Array(g.scales.data.length).fill(0.01);
    f[3] = 1e-9;
    expect(() => fromGptq({ ...g, scales: { dtype: "bfloat16", shape: g.scales.shape, data: f32ToBf16(f) } }, cfg)).toThrow(/scale 3 = .* underflows fp16/);
    f[3] = 1e6;
    expect(() => fromGptq({ ...g, scales: { dtype: "float32", shape: g.scales.shape, data: f } }, cfg)).toThrow(/scale 3 overflows fp16/);
  });
  it("asymmetric weights declared symmetric (their zeros would be dropped) are refused", () => {
    const g = toGptq(layer(64, 32, 4, false));
    expect(() => fromGptq(g, cfg)).toThrow(FormatError);
    expect(() => fromGptq(g, cfg)).toThrow(/declared symmetric .* holds zero/);
    expect(fromGptq(g, { ...cfg, sym: false }).zeros).toBeDefined();
  });
  it("8-bit words declared 4-bit are refused (scales, qzeros or their zeros do not fit 4-bit fields)", () => {
    // Grouped: k reads as 2 x 64, so the scales hold half the groups 4-bit needs.
    const g = toGptq(layer(64, 32, 8, true));
    expect(() => fromGptq(g, cfg)).toThrow(/scales has shape \[2,32\], expected \[4,32\]/);
    // Per-channel and without g_idx (whose length would tell): the scales fit; qzeros [1, n/4] are
    // not the [1, n/8] of 4-bit words.
    const pc = { ...toGptq(layer(64, 32, 8, true, -1)), g_idx: undefined };
    expect(() => fromGptq(pc, { ...cfg, groupSize: -1 })).toThrow(/qzeros has shape \[1,8\], expected \[1,4\]/);
    // Per-channel with the qzeros reshaped to fit: their 0x7f bytes read as 4-bit zeros give 0 and 8.
    const fit = { ...pc, qzeros: { ...pc.qzeros, shape: [1, 4], data: (pc.qzeros.data as Int32Array).slice(0, 4) } };
    expect(() => fromGptq(fit, { ...cfg, groupSize: -1 })).toThrow(/declared symmetric \(4-bit, zero 8\) .* holds zero 0/);
  });
  it("AWQ without zero_point whose qzeros are not 8 is refused", () => {
    const a = toAwq(layer(64, 32, 4, false));
    expect(() => fromAwq(a, { groupSize: 32, zeroPoint: false })).toThrow(/declared symmetric/);
    expect(() => fromAwq({ ...a, scales: { ...a.scales, shape: [a.scales.shape[1], a.scales.shape[0]] } }, { groupSize: 32 })).toThrow(ShapeError);
  });
  it("through loadQuantizedLayer with a quantization config, as the engine reads them", async () => {
    const g = toGptq(layer(64, 32, 4, false));
    const p = "model.layers.0.mlp.up_proj";
    const src = source({ [`${p}.qweight`]: g.qweight, [`${p}.qzeros`]: g.qzeros, [`${p}.scales`]: g.scales, [`${p}.g_idx`]: g.g_idx });
    const sym = parseQuantizationConfig({ quant_method: "gptq", bits: 4, group_size: 32, sym: true });
    await expect(loadQuantizedLayer(src, p, sym)).rejects.toThrow(FormatError);
  });
});

describe.skipIf(!hasMkfifo)("FIFOs and devices are refused before any read", () => {
  it("a FIFO as model.safetensors: FormatError at once (open(2) would wait for a writer)", async () => {
    const fifo = join(work, "model.safetensors");
    execFileSync("mkfifo", [fifo]);
    await expect(SafetensorsFile.open(fifo)).rejects.toThrow(/is a FIFO, not a regular file/);
    expect(() => readRegularFileSync(fifo, 1 << 20)).toThrow(FormatError);
  });
  it("a character device, a directory and an oversized file are refused", async () => {
    if (existsSync("/dev/zero")) expect(() => readRegularFileSync("/dev/zero", 1 << 20)).toThrow(/character device/);
    await expect(openRegularFile(work)).rejects.toThrow(/is a directory/);
    const big = join(work, "big.json");
    writeFileSync(big, "x".repeat(100));
    expect(() => readRegularFileSync(big, 10)).toThrow(/more than the 10-byte limit/);
  });
});

describe("file system failures are IoError naming the path", () => {
  it("ENOSPC / EROFS / ENOENT from an fs call", () => {
    for (const [code, text] of [
      ["ENOSPC", "no space left on device"],
      ["EROFS", "read-only file system"],
      ["ENOENT", "no such file or directory"],
    ]) {
      const e = ioError(Object.assign(new Error(`${code}: ${text}, write`), { code }), "write", "/x/model.safetensors") as IoError;
      expect(e).toBeInstanceOf(IoError);
      expect(e.code).toBe("ERR_MARLIN_IO");
      expect(e.syscallCode).toBe(code);
      expect(e.message).toBe(`/x/model.safetensors: cannot write: ${text} (${code})`);
    }
    const typed = new FormatError("x");
    expect(ioError(typed, "write", "/x")).toBe(typed);
  });
  it("the writer in a missing directory: IoError, nothing created", async () => {
    const dir = join(work, "missing", "deeper");
    const err = await SafetensorsWriter.create(join(dir, "m.safetensors"), [{ name: "w", dtype: "float32", shape: [1] }]).catch((e) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).syscallCode).toBe("ENOENT");
    expect(existsSync(dir)).toBe(false);
  });
  it("a valid file still reads", async () => {
    mkdirSync(join(work, "ok"));
    const bytes = serializeSafetensors({ w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } });
    writeFileSync(join(work, "ok", "m.safetensors"), bytes);
    const f = await SafetensorsFile.open(join(work, "ok", "m.safetensors"));
    expect(Array.from((await f.read("w")).data as Float32Array)).toEqual([1, 2]);
    await f.close();
    expect(readdirSync(join(work, "ok"))).toEqual(["m.safetensors"]);
  });
});
