import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  byteSize,
  openCheckpoint,
  SafetensorsFile,
  SafetensorsWriter,
  serializeSafetensors,
  TENSOR_DTYPES,
  type TensorDType,
  toSafetensorsDType,
  viewAs,
  writeSafetensors,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "marlin-format-st-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const seed = runSeed();
console.log(`safetensors seed ${seed}`);

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
  return b;
}

/** A shape whose byte size is whole for the dtype. */
function shapeFor(dtype: TensorDType, rng: Rng): number[] {
  const shape = [rng.int(1, 5), rng.int(1, 7) * 4];
  return byteSize(dtype, shape[0] * shape[1]) >= 0 ? shape : [4, 4];
}

describe("safetensors round trips", () => {
  it("writes and reads back every dtype, with metadata", async () => {
    const rng = new Rng(seed);
    const tensors: Record<string, { dtype: TensorDType; shape: number[]; data: Uint8Array }> = {};
    for (const dtype of TENSOR_DTYPES) {
      const shape = shapeFor(dtype, rng);
      tensors[`t.${dtype}`] = { dtype, shape, data: randomBytes(rng, byteSize(dtype, shape[0] * shape[1])) };
    }
    tensors.scalar = { dtype: "float32", shape: [], data: randomBytes(rng, 4) };
    tensors.empty = { dtype: "int64", shape: [0, 3], data: new Uint8Array(0) };
    const path = join(dir, "all.safetensors");
    const metadata = { format: "pt", note: "ünïcødé ✓" };
    await writeSafetensors(path, tensors, metadata);
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.metadata).toEqual(metadata);
      expect([...f.tensors.keys()].sort()).toEqual(Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const info = f.tensors.get(name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        const back = await f.read(name);
        expect(back.dtype).toBe(t.dtype);
        expect(back.shape).toEqual(t.shape);
        const bytes = new Uint8Array(back.data.buffer, back.data.byteOffset, back.data.byteLength);
        expect(bytes).toEqual(t.data);
        // The typed array kind is the natural one for the dtype.
        expect(back.data.constructor).toBe(viewAs(t.dtype, new ArrayBuffer(8), 0, 8).constructor);
      }
    } finally {
      await f.close();
    }
    // Same bytes from the in-memory serializer.
    expect(new Uint8Array(await readFile(path))).toEqual(serializeSafetensors(tensors, metadata));
  });

  it("maps core dtype names to spec names", () => {
    expect(toSafetensorsDType("float16")).toBe("F16");
    expect(toSafetensorsDType("bfloat16")).toBe("BF16");
    expect(toSafetensorsDType("bool")).toBe("BOOL");
    expect(toSafetensorsDType("uint64")).toBe("U64");
    expect(toSafetensorsDType("float8_e4m3fn")).toBe("F8_E4M3");
  });

  it("typed values survive (f32, i64, bool) and the header is 8-byte aligned", async () => {
    const path = join(dir, "typed.safetensors");
    const a = Float32Array.of(1.5, -2, Number.POSITIVE_INFINITY);
    const b = BigInt64Array.of(-(2n ** 63n), 42n);
    const c = Uint8Array.of(1, 0, 1);
    await writeSafetensors(path, {
      a: { dtype: "float32", shape: [3], data: a },
      b: { dtype: "int64", shape: [2], data: b },
      c: { dtype: "bool", shape: [3], data: c },
    });
    const raw = await readFile(path);
    const n = Number(raw.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const f = await SafetensorsFile.open(path);
    expect((await f.read("a")).data).toEqual(a);
    expect((await f.read("b")).data).toEqual(b);
    expect((await f.read("c")).data).toEqual(c);
    await f.close();
  });

  it("streams tensors in order, in parts, and leaves nothing behind on errors", async () => {
    const path = join(dir, "stream.safetensors");
    const w = await SafetensorsWriter.create(
      path,
      [
        { name: "x", dtype: "int32", shape: [4, 2] },
        { name: "y", dtype: "float16", shape: [3] },
      ],
      { k: "v" },
    );
    await expect(w.write("y", new Uint16Array(3))).rejects.toBeInstanceOf(InvalidArgumentError);
    // the failed out-of-order call did not abort: order errors are caught before writing
    await w.writePart("x", Int32Array.of(1, 2, 3, 4));
    await w.writePart("x", Int32Array.of(5, 6, 7, 8));
    await w.write("y", Uint16Array.of(0x3c00, 0, 0xbc00));
    expect((await readdir(dir)).filter((f) => f.startsWith("stream"))).toEqual([
      expect.stringMatching(/^stream\.safetensors\.tmp-/),
    ]);
    await w.close();
    const f = await SafetensorsFile.open(path);
    expect(Array.from((await f.read("x")).data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(f.metadata).toEqual({ k: "v" });
    await f.close();

    const bad = join(dir, "bad.safetensors");
    const w2 = await SafetensorsWriter.create(bad, [{ name: "x", dtype: "int32", shape: [4] }]);
    await expect(w2.write("x", new Int32Array(3))).rejects.toBeInstanceOf(ShapeError);
    const w3 = await SafetensorsWriter.create(bad, [{ name: "x", dtype: "int32", shape: [4] }]);
    await expect(w3.close()).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      writeSafetensors(bad, { x: { dtype: "int32", shape: [4], data: new Int32Array(5) } }),
    ).rejects.toBeInstanceOf(ShapeError);
    expect((await readdir(dir)).filter((f) => f.startsWith("bad"))).toEqual([]);
  });

  it("rejects bad specs before creating a file", async () => {
    const p = join(dir, "never.safetensors");
    await expect(
      SafetensorsWriter.create(p, [
        { name: "a", dtype: "int8", shape: [1] },
        { name: "a", dtype: "int8", shape: [1] },
      ]),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(SafetensorsWriter.create(p, [{ name: "a", dtype: "int8", shape: [-1] }])).rejects.toBeInstanceOf(
      ShapeError,
    );
    await expect(
      SafetensorsWriter.create(p, [{ name: "a", dtype: "float4_e2m1fn", shape: [3] }]),
    ).rejects.toBeInstanceOf(ShapeError);
    await expect(
      SafetensorsWriter.create(p, [{ name: "a", dtype: "nope" as TensorDType, shape: [3] }]),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await readdir(dir)).filter((f) => f.startsWith("never"))).toEqual([]);
  });
});

describe("lazy reads", () => {
  it("opens a 15 GB (sparse) file reading only its header, and reads a tensor past 4 GiB", async () => {
    const big = 15_000_000_000;
    const header = JSON.stringify({
      big: { dtype: "U8", shape: [big], data_offsets: [0, big] },
      tail: { dtype: "I32", shape: [2], data_offsets: [big, big + 8] },
    });
    const h = new TextEncoder().encode(header);
    const path = join(dir, "sparse.safetensors");
    const { open } = await import("node:fs/promises");
    const fh = await open(path, "w");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    await fh.write(len, 0, 8, 0);
    await fh.write(h, 0, h.length, 8);
    await fh.write(new Uint8Array(Int32Array.of(-7, 123456789).buffer), 0, 8, 8 + h.length + big);
    await fh.close();
    const before = process.memoryUsage().rss;
    const f = await SafetensorsFile.open(path);
    expect(f.tensors.get("big")!.byteLength).toBe(big);
    expect(Array.from((await f.read("tail")).data as Int32Array)).toEqual([-7, 123456789]);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 2 ** 20);
    await f.close();
    await expect(f.read("tail")).rejects.toMatchObject({ code: "ERR_MARLIN_DISPOSED" });
    await rm(path);
  });
});

describe("sharded checkpoints", () => {
  it("opens an index, a directory and a single file through one interface", async () => {
    const sub = join(dir, "sharded");
    await rm(sub, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(sub));
    await writeSafetensors(
      join(sub, "model-00001-of-00002.safetensors"),
      { a: { dtype: "float32", shape: [2], data: Float32Array.of(1, 2) } },
      { format: "pt" },
    );
    await writeSafetensors(join(sub, "model-00002-of-00002.safetensors"), {
      b: { dtype: "int32", shape: [1], data: Int32Array.of(7) },
      c: { dtype: "int8", shape: [1], data: Int8Array.of(-1) },
    });
    await writeFile(
      join(sub, "model.safetensors.index.json"),
      JSON.stringify({
        metadata: { total_size: 13 },
        weight_map: {
          a: "model-00001-of-00002.safetensors",
          b: "model-00002-of-00002.safetensors",
          c: "model-00002-of-00002.safetensors",
        },
      }),
    );
    const ck = await openCheckpoint(sub);
    expect([...ck.tensors.keys()].sort()).toEqual(["a", "b", "c"]);
    expect(ck.tensors.get("b")!.file).toMatch(/00002/);
    expect(Array.from((await ck.read("a")).data as Float32Array)).toEqual([1, 2]);
    expect(Array.from((await ck.read("b")).data as Int32Array)).toEqual([7]);
    expect(ck.metadata).toEqual({ format: "pt" });
    expect(ck.indexMetadata).toEqual({ total_size: 13 });
    await ck.close();

    // An index naming a tensor its shard lacks.
    await writeFile(
      join(sub, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { z: "model-00001-of-00002.safetensors" } }),
    );
    await expect(openCheckpoint(sub)).rejects.toMatchObject({ code: "ERR_MARLIN_FORMAT", tensor: "z" });
    // Path traversal in the index.
    await writeFile(join(sub, "model.safetensors.index.json"), JSON.stringify({ weight_map: { a: "../x" } }));
    await expect(openCheckpoint(sub)).rejects.toBeInstanceOf(FormatError);
    await rm(join(sub, "model.safetensors.index.json"));
    const ck2 = await openCheckpoint(sub); // no index: every shard in the directory
    expect(ck2.tensors.size).toBe(3);
    await ck2.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzzing: corrupt valid files at random; every case must either parse (and then every tensor
// must read back within bounds) or throw FormatError. Nothing else, no hang, no huge allocation.

function validFile(rng: Rng): Uint8Array {
  const tensors: Record<string, { dtype: TensorDType; shape: number[]; data: Uint8Array }> = {};
  const count = rng.int(0, 5);
  for (let i = 0; i < count; i++) {
    const dtype = TENSOR_DTYPES[rng.int(0, TENSOR_DTYPES.length)];
    const shape = shapeFor(dtype, rng);
    tensors[`layer.${i}.w`] = { dtype, shape, data: randomBytes(rng, byteSize(dtype, shape[0] * shape[1])) };
  }
  return serializeSafetensors(tensors, rng.next() < 0.5 ? { format: "pt" } : undefined);
}

function headerOf(bytes: Uint8Array): { n: number; json: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: new TextDecoder().decode(bytes.subarray(8, 8 + n)) };
}

function withHeader(bytes: Uint8Array, json: string, lengthDelta = 0): Uint8Array {
  const { n } = headerOf(bytes);
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, h.length + lengthDelta)), true);
  out.set(h, 8);
  out.set(bytes.subarray(8 + n), 8 + h.length);
  return out;
}

const WEIRD: unknown[] = [
  -1,
  0,
  1,
  2 ** 31,
  2 ** 53,
  2 ** 64,
  1.5,
  Number.MAX_SAFE_INTEGER,
  "8",
  null,
  true,
  [],
  {},
  [1, 2, 3],
  "F16",
  "X99",
  [0],
  [-1, 4],
  [4, 2],
];

function mutateJson(rng: Rng, json: string): string {
  let obj: Record<string, any>;
  try {
    obj = JSON.parse(json);
  } catch {
    return json;
  }
  const names = Object.keys(obj).filter((k) => k !== "__metadata__");
  const pick = <T>(xs: T[]) => xs[rng.int(0, xs.length)];
  const name = names.length ? pick(names) : "t";
  const entry = obj[name] ?? {};
  switch (rng.int(0, 10)) {
    case 0:
      entry.dtype = pick(WEIRD.concat(["F32", "I64", "BOOL", "F4", "f16", "F8_E4M3"]));
      break;
    case 1:
      entry.shape = pick(WEIRD.concat([[1, 2 ** 40], [2 ** 30, 2 ** 30, 2 ** 30], [3]]));
      break;
    case 2:
      entry.data_offsets = pick(WEIRD.concat([[0, 2 ** 50], [5, 3]]));
      break;
    case 3:
      if (Array.isArray(entry.data_offsets)) entry.data_offsets[rng.int(0, 2)] += rng.int(-9, 10);
      break;
    case 4:
      if (Array.isArray(entry.shape) && entry.shape.length) entry.shape[rng.int(0, entry.shape.length)] += rng.int(-2, 3);
      break;
    case 5:
      obj.__metadata__ = pick([{ a: 1 }, "x", [], null, { a: "b" }, { a: { b: "c" } }]);
      break;
    case 6:
      obj[name] = pick(WEIRD);
      break;
    case 7:
      delete entry[pick(["dtype", "shape", "data_offsets"])];
      break;
    case 8: {
      // two tensors sharing one range
      if (names.length > 1) obj[names[0]].data_offsets = obj[names[1]].data_offsets;
      break;
    }
    default:
      return JSON.stringify(pick(WEIRD));
  }
  return JSON.stringify(obj);
}

function corrupt(rng: Rng, bytes: Uint8Array): Uint8Array {
  const { json } = headerOf(bytes);
  switch (rng.int(0, 8)) {
    case 0: {
      // random bytes flipped anywhere (header included)
      const out = bytes.slice();
      const flips = rng.int(1, 6);
      for (let i = 0; i < flips && out.length; i++) out[rng.int(0, out.length)] ^= 1 << rng.int(0, 8);
      return out;
    }
    case 1: {
      // header length field set to something odd
      const out = bytes.slice();
      const v = [0n, 1n, 7n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n, BigInt(out.length), BigInt(rng.nextU32())];
      new DataView(out.buffer).setBigUint64(0, v[rng.int(0, v.length)], true);
      return out;
    }
    case 2:
      return bytes.slice(0, rng.int(0, bytes.length)); // truncated
    case 3: {
      const extra = randomBytes(rng, rng.int(1, 16)); // trailing garbage
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes);
      out.set(extra, bytes.length);
      return out;
    }
    case 4:
      return withHeader(bytes, mutateJson(rng, json));
    case 5:
      return withHeader(bytes, json, rng.int(-3, 4)); // header length off by a little
    case 6: {
      // invalid UTF-8 inside a name
      const out = withHeader(bytes, json);
      const quote = out.indexOf(0x22, 9);
      if (quote > 0) out[quote + 1] = [0xff, 0xc0, 0xed][rng.int(0, 3)];
      return out;
    }
    default:
      return randomBytes(rng, rng.int(0, 64));
  }
}

async function exercise(f: SafetensorsFile): Promise<void> {
  let covered = 0;
  for (const [name, info] of f.tensors) {
    const t = await f.read(name);
    expect(t.data.byteLength).toBe(info.byteLength);
    covered += info.byteLength;
  }
  expect(covered).toBeLessThanOrEqual(1 << 20);
}

describe("fuzz", () => {
  it("5000 corrupted in-memory files: parse or FormatError, nothing else", async () => {
    const rng = new Rng(seed ^ 0x5eed);
    let ok = 0;
    let rejected = 0;
    const t0 = performance.now();
    for (let i = 0; i < 5000; i++) {
      const bytes = corrupt(rng, validFile(rng));
      try {
        const f = await SafetensorsFile.fromBytes(bytes, `case-${i}`);
        await exercise(f);
        await f.close();
        ok++;
      } catch (e) {
        if (!(e instanceof FormatError)) {
          throw new Error(`case ${i} (seed ${seed}) threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        }
        expect(e.file).toBe(`case-${i}`);
        rejected++;
      }
    }
    console.log(`fuzz: ${ok} parsed, ${rejected} rejected in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(rejected).toBeGreaterThan(2500);
  });

  it("300 corrupted files on disk through SafetensorsFile.open", async () => {
    const rng = new Rng(seed ^ 0xf11e);
    const path = join(dir, "fuzz.safetensors");
    for (let i = 0; i < 300; i++) {
      await writeFile(path, corrupt(rng, validFile(rng)));
      try {
        const f = await SafetensorsFile.open(path);
        await exercise(f);
        await f.close();
      } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`disk case ${i} (seed ${seed}) threw ${e}`);
        expect(e.file).toBe(path);
        expect(e.message).toContain(path);
      }
    }
  });

  it("survives deep nesting and keeps odd keys such as __proto__ as data", async () => {
    const mk = (json: string) => {
      const h = new TextEncoder().encode(json);
      const b = new Uint8Array(8 + h.length);
      new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
      b.set(h, 8);
      return b;
    };
    await expect(SafetensorsFile.fromBytes(mk(`${"[".repeat(200_000)}${"]".repeat(200_000)}`))).rejects.toBeInstanceOf(
      FormatError,
    );
    await expect(
      SafetensorsFile.fromBytes(mk(`{"a":${"{".repeat(100_000)}${"}".repeat(100_000)}}`)),
    ).rejects.toBeInstanceOf(FormatError);
    const f = await SafetensorsFile.fromBytes(mk('{"__metadata__":{"__proto__":"x","a":"b"}}'));
    expect(Object.keys(f.metadata).sort()).toEqual(["__proto__", "a"]);
    const path = join(dir, "proto.safetensors");
    await writeSafetensors(
      path,
      new Map([["__proto__", { dtype: "uint8" as const, shape: [1], data: Uint8Array.of(9) }]]),
      Object.fromEntries([["__proto__", "y"]]),
    );
    const g = await SafetensorsFile.open(path);
    expect([...g.tensors.keys()]).toEqual(["__proto__"]);
    expect(Object.keys(g.metadata)).toEqual(["__proto__"]);
    await g.close();
  });

  it("names the file and tensor in errors", async () => {
    const good = serializeSafetensors({ w: { dtype: "float16", shape: [2, 2], data: new Uint16Array(4) } });
    const { json } = headerOf(good);
    const bad = withHeader(good, json.replace('"shape":[2,2]', '"shape":[2,3]'));
    await expect(SafetensorsFile.fromBytes(bad, "m.safetensors")).rejects.toMatchObject({
      code: "ERR_MARLIN_FORMAT",
      file: "m.safetensors",
      tensor: "w",
    });
    const gap = withHeader(good, json.replace('"data_offsets":[0,8]', '"data_offsets":[0,6]').replace("[2,2]", "[3]"));
    await expect(SafetensorsFile.fromBytes(gap, "g")).rejects.toThrow(/file length mismatch|gap/);
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    await expect(SafetensorsFile.fromBytes(huge, "h")).rejects.toThrow(/limit/);
  });
});
