/**
 * Native op arguments: every engine CPU op, the Marlin CPU entry point and the GPU entry points
 * (NoDeviceError without CUDA), first with consistent small arguments, then with dimensions
 * swapped for edge numbers (2^32, -1, NaN, 2^53 ...), arrays of the wrong type or length (empty
 * ones too), out-of-range indices, odd values (strings, null, BigInt) and missing arguments.
 */
import type { Rng } from "@marlin/core";
import { cpuOps } from "@marlin/engine";
import { native, typedError } from "@marlin/kernel";
import { chance, edgeNumber, pick } from "../mutate.js";
import type { Target } from "./types.js";

type Args = unknown[];

const f32 = (rng: Rng, n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
};
const i32 = (rng: Rng, n: number, lo: number, hi: number) => Int32Array.from({ length: n }, () => rng.int(lo, hi));
const small = (rng: Rng, lo: number, hi: number) => rng.int(lo, hi + 1);

/** Consistent, small argument lists per op (what the engine would pass). */
const SPECS: Record<string, (rng: Rng) => Args> = {
  linear(rng) {
    const m = small(rng, 0, 5), n = small(rng, 1, 40), k = small(rng, 1, 40);
    const packed = Math.ceil(n / 16) * 16 * k;
    return [f32(rng, m * k), f32(rng, packed), chance(rng, 0.5) ? f32(rng, n) : null, new Float32Array(m * n), m, n, k];
  },
  packLinear(rng) {
    const n = small(rng, 1, 40), k = small(rng, 1, 40);
    return [f32(rng, n * k), n, k, new Float32Array(Math.ceil(n / 16) * 16 * k)];
  },
  packedLinearSize: (rng) => [small(rng, 1, 100), small(rng, 1, 100)],
  embedding(rng) {
    const vocab = small(rng, 1, 50), hidden = small(rng, 1, 32), t = small(rng, 0, 6);
    return [i32(rng, t, 0, vocab), f32(rng, vocab * hidden), vocab, hidden, new Float32Array(t * hidden)];
  },
  rmsnorm(rng) {
    const rows = small(rng, 0, 4), hidden = small(rng, 1, 64);
    return [f32(rng, rows * hidden), f32(rng, hidden), 1e-5, rows, hidden, new Float32Array(rows * hidden)];
  },
  addRmsnorm(rng) {
    const rows = small(rng, 0, 4), hidden = small(rng, 1, 64);
    return [f32(rng, rows * hidden), f32(rng, rows * hidden), f32(rng, hidden), 1e-5, rows, hidden];
  },
  rope(rng) {
    const rows = small(rng, 0, 4), heads = small(rng, 1, 3), headDim = 2 * small(rng, 1, 8), rot = 2 * small(rng, 1, headDim / 2), maxp = small(rng, 1, 16);
    const stride = heads * headDim + small(rng, 0, 4);
    return [f32(rng, rows * stride), rows, stride, heads, headDim, rot, i32(rng, rows, 0, maxp), f32(rng, (maxp * rot) / 2), f32(rng, (maxp * rot) / 2), maxp];
  },
  siluMul(rng) {
    const rows = small(rng, 0, 4), inter = small(rng, 1, 64);
    return [f32(rng, rows * 2 * inter), rows, inter, new Float32Array(rows * inter)];
  },
  storeKv(rng) {
    const rows = small(rng, 0, 4), kv = small(rng, 1, 16), stride = 3 * kv, slots = small(rng, 1, 20);
    return [f32(rng, rows * stride), rows, stride, kv, 2 * kv, kv, i32(rng, rows, -1, slots), new Float32Array(slots * kv), new Float32Array(slots * kv)];
  },
  pagedAttention(rng) {
    const kvHeads = small(rng, 1, 2), heads = kvHeads * small(rng, 1, 3), headDim = small(rng, 1, 16), blockSize = small(rng, 1, 8);
    const seqs = small(rng, 1, 3), maxBlocks = small(rng, 1, 4), nblocks = seqs * maxBlocks, rows = small(rng, 0, 5);
    const cache = nblocks * blockSize * kvHeads * headDim;
    const qStride = heads * headDim;
    return [
      f32(rng, rows * qStride), rows, qStride, heads, kvHeads, headDim, f32(rng, cache), f32(rng, cache),
      i32(rng, seqs * maxBlocks, 0, nblocks), maxBlocks, blockSize, i32(rng, rows, 0, seqs), i32(rng, rows, 0, maxBlocks * blockSize),
      1 / Math.sqrt(headDim), new Float32Array(rows * heads * headDim),
    ];
  },
  sample(rng) {
    const rows = small(rng, 0, 4), vocab = small(rng, 1, 100);
    const logits = f32(rng, rows * vocab);
    if (chance(rng, 0.2)) logits[rng.int(0, Math.max(1, logits.length))] = pick(rng, [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    const temps = Float32Array.from({ length: rows }, () => pick(rng, [0, 0.7, 1, 1e-30, Number.NaN, 1e30]));
    const topP = Float32Array.from({ length: rows }, () => pick(rng, [1, 0.5, 0, Number.NaN, 2]));
    return [logits, rows, vocab, temps, i32(rng, rows, -5, vocab + 5), topP, Uint32Array.from({ length: 2 * rows }, () => rng.nextU32()), i32(rng, rows, -3, 100), new Int32Array(rows)];
  },
  logprobs(rng) {
    const rows = small(rng, 0, 4), vocab = small(rng, 1, 100);
    return [f32(rng, rows * vocab), rows, vocab, i32(rng, rows, 0, vocab), new Float64Array(rows)];
  },
  marlinCpu(rng) {
    const m = small(rng, 1, 3), k = 128, n = 64, group = pick(rng, [-1, 128, 64, 32]);
    const groups = group === -1 ? 1 : k / group;
    const weight = pick(rng, [0, 1, 2]);
    const bits = weight === 2 ? 8 : 4;
    const a = Uint16Array.from({ length: m * k }, () => 0x3c00);
    const zeros = weight === 1 ? new Int32Array((groups * n * bits) / 32) : null;
    return [a, new Int32Array((k * n * bits) / 32), Uint16Array.from({ length: groups * n }, () => 0x2000), zeros, null, null, new Uint16Array(m * n), m, n, k, group, pick(rng, [0, 1]), weight];
  },
};

/**
 * Entry points called with random arguments: the GPU ones must refuse (NoDeviceError without
 * CUDA) whatever they are given; the CPU ones (dense matmul, pattern) must refuse bad arguments.
 */
const RAW = ["denseCpu", "patternHost", "marlinGemm", "denseGemm", "marlinWorkspaceBytes", "deviceInfo", "memInfo", "synchronize", "writePattern", "gptq.hessianAdd", "gptq.diag", "gptq.factor", "gptq.params", "gptq.loop", "engineCuda"];

function oddArg(rng: Rng): unknown {
  switch (rng.int(0, 9)) {
    case 0:
      return pick(rng, [null, undefined, "7", {}, [], true, 3n]);
    case 1:
      return new Float32Array(0);
    case 2:
      return new Int32Array(rng.int(0, 8)).fill(pick(rng, [-1, 2 ** 31 - 1, -(2 ** 31)]));
    case 3:
      return new Uint16Array(rng.int(0, 8));
    case 4:
      return new Float64Array(rng.int(0, 8));
    case 5:
      return new ArrayBuffer(rng.int(0, 16));
    default:
      return edgeNumber(rng);
  }
}

/** Dimensions whose products wrap int64 (2^32 * 2 * 2^32 = 2^65 wraps to 0), with empty arrays. */
const WRAPPING = [2 ** 32, 2 ** 33, 2 ** 40, 2 ** 48, 2 ** 53 - 1];

/** 0-3 edits of a consistent argument list. */
function mutateArgs(rng: Rng, args: Args): Args {
  const out = args.slice();
  if (chance(rng, 0.1)) {
    // Every dimension huge, every array empty: a length check on a wrapped product would pass.
    return out.map((x) => (typeof x === "number" ? pick(rng, WRAPPING) : ArrayBuffer.isView(x) ? new (x.constructor as Float32ArrayConstructor)(0) : x));
  }
  for (let e = 0; e < rng.int(0, 4); e++) {
    const i = rng.int(0, Math.max(1, out.length));
    const x = out[i];
    if (typeof x === "number") out[i] = chance(rng, 0.7) ? edgeNumber(rng) : x + pick(rng, [-1, 1, 2 ** 32, -(2 ** 32)]);
    else if (x instanceof Int32Array && chance(rng, 0.5)) {
      const y = x.slice();
      if (y.length) y[rng.int(0, y.length)] = pick(rng, [-2, -1, 2 ** 31 - 1, -(2 ** 31), rng.int(0, 1000)]);
      out[i] = y;
    } else if (ArrayBuffer.isView(x) && chance(rng, 0.5)) {
      const len = (x as Float32Array).length;
      out[i] = new (x.constructor as Float32ArrayConstructor)(pick(rng, [0, Math.max(0, len - 1), len + 1, 1]));
    } else out[i] = oddArg(rng);
  }
  if (chance(rng, 0.05)) out.length = rng.int(0, out.length);
  return out;
}

function rawCall(rng: Rng, name: string): void {
  const n = native() as unknown as Record<string, any>;
  if (name === "engineCuda") {
    // The engine's CUDA ops (present in CUDA builds): argument checks run before any device access.
    const ops = Object.keys(n.engineCuda ?? {}).filter((k) => typeof n.engineCuda[k] === "function" && k !== "CudaGraph");
    if (ops.length === 0) return;
    name = `engineCuda.${pick(rng, ops)}`;
  }
  const [group, op] = name.includes(".") ? name.split(".") : [undefined, name];
  const fn = group ? n[group]?.[op] : n[op];
  if (typeof fn !== "function") return; // not in this build
  const args = Array.from({ length: rng.int(0, 18) }, () => (chance(rng, 0.5) ? rng.int(0, 300) : oddArg(rng)));
  fn(...args);
}

export const nativeTarget: Target = {
  name: "native",
  async run(rng) {
    const ops = cpuOps() as unknown as Record<string, (...a: unknown[]) => unknown>;
    if (chance(rng, 0.05)) {
      try {
        rawCall(rng, pick(rng, RAW));
      } catch (e) {
        throw typedError(e);
      }
      return;
    }
    const op = pick(rng, Object.keys(SPECS));
    const args = chance(rng, 0.15) ? SPECS[op](rng) : mutateArgs(rng, SPECS[op](rng));
    if (op === "marlinCpu") {
      try {
        (native() as unknown as Record<string, (...a: unknown[]) => unknown>).marlinCpu(...args);
      } catch (e) {
        throw typedError(e);
      }
    } else ops[op](...args);
  },
};
