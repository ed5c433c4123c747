/**
 * The Marlin mixed-precision matmul: out[m, n] = x[m, k] * dequant(W)[k, n] (+ bias), with W in the
 * Marlin layout of @marlin/format (4-bit symmetric, 4-bit with zero points, 8-bit symmetric; group
 * sizes -1, 32, 64, 128; act-order). GPU operands (DeviceBuffer) run the CUDA kernel on a stream
 * without host synchronization; host operands (Uint16Array) run the multi-threaded CPU path.
 */
import {
  type ActivationDType,
  DTypeError,
  InvalidArgumentError,
  ShapeError,
} from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";
import { call } from "./native.js";
import { checkDim, checkDType, checkOperand, describe, isDevice, type Operand } from "./operand.js";
import type { Stream } from "./stream.js";
import { MarlinWorkspace } from "./workspace.js";

export type WeightBits = 4 | 8;

/** Packed weights of one layer, on the host (CPU path) or on a device (GPU path). */
export interface MarlinWeights<B = Int32Array | DeviceBuffer> {
  k: number;
  n: number;
  bits: WeightBits;
  /** -1 per-channel, else 32, 64 or 128. */
  groupSize: number;
  /** Int32 [k/16, n*16*bits/32] (Marlin layout). */
  qweight: B;
  /** fp16/bf16 bits [groups, n], permuted (same dtype as the activations). */
  scales: B extends DeviceBuffer ? DeviceBuffer : Uint16Array;
  /** Packed zero points [groups, n*bits/32]; present iff asymmetric. */
  zeros?: B;
  /** Act-order: activations are gathered as x[:, perm] (packed rows sorted by group). */
  perm?: B;
  /** Optional bias [n], same dtype as the activations. */
  bias?: B extends DeviceBuffer ? DeviceBuffer : Uint16Array;
}

export type HostMarlinWeights = MarlinWeights<Int32Array>;
export type DeviceMarlinWeights = MarlinWeights<DeviceBuffer>;

/** Tile and partition overrides (benchmarks and tests); leave empty for the automatic choice. */
export interface MarlinTuning {
  /** Tile k = tk * 16 (4 or 8), tile n = tn * 16 (4, 8 or 16). */
  tk?: number;
  tn?: number;
  blocksPerSm?: number;
  /** Whole columns per block and a tile fixed by n: each row's result is the same for any m. */
  batchInvariant?: boolean;
}

export interface MarlinMatmulArgs {
  x: Operand;
  xByteOffset?: number;
  out: Operand;
  outByteOffset?: number;
  m: number;
  weights: MarlinWeights;
  dtype?: ActivationDType;
  /** GPU only: scratch memory (defaults to the device's shared workspace). */
  workspace?: MarlinWorkspace;
  stream?: Stream;
  tuning?: MarlinTuning;
}

const GROUPS = new Set([-1, 32, 64, 128]);

/** Why this kernel cannot take the problem, or undefined when it can (shared with the registry). */
export function marlinShapeRefusal(p: {
  n: number;
  k: number;
  bits: number;
  groupSize: number;
  zeroPoints: boolean;
}): string | undefined {
  if (p.bits !== 4 && p.bits !== 8) return `${p.bits}-bit weights are not supported (4 or 8)`;
  if (p.bits === 8 && p.zeroPoints) return "8-bit weights with zero points are not built (8-bit is symmetric only)";
  if (p.n % 64 !== 0) return `n = ${p.n} is not a multiple of 64`;
  if (p.n > 262144) return `n = ${p.n} exceeds 262144`;
  if (p.k % 128 !== 0) return `k = ${p.k} is not a multiple of 128`;
  const perChannel = p.groupSize === -1 || p.groupSize === p.k;
  if (!perChannel && !GROUPS.has(p.groupSize)) return `group size ${p.groupSize} is not supported (-1, 32, 64, 128)`;
  if (!perChannel && p.k % p.groupSize !== 0) return `k = ${p.k} is not a multiple of the group size ${p.groupSize}`;
  return undefined;
}

export function numGroups(k: number, groupSize: number): number {
  return groupSize === -1 || groupSize >= k ? 1 : k / groupSize;
}

/** Checks packed weights for a GPU (`device`) or CPU call; shared with the Hopper and dequantize paths. */
export function checkWeights(w: MarlinWeights, device: boolean): void {
  if (!w || typeof w !== "object") throw new InvalidArgumentError("weights must be an object");
  checkDim("weights.k", w.k);
  checkDim("weights.n", w.n);
  const zeroPoints = w.zeros !== undefined;
  const why = marlinShapeRefusal({ n: w.n, k: w.k, bits: w.bits, groupSize: w.groupSize, zeroPoints });
  if (why) throw new ShapeError(why);
  const groups = numGroups(w.k, w.groupSize);
  const sizes: [string, unknown, number, string][] = [
    ["qweight", w.qweight, (w.k * w.n * w.bits) / 8, "Int32Array"],
    ["scales", w.scales, groups * w.n * 2, "Uint16Array"],
  ];
  if (w.zeros !== undefined) sizes.push(["zeros", w.zeros, (groups * w.n * w.bits) / 8, "Int32Array"]);
  if (w.perm !== undefined) sizes.push(["perm", w.perm, w.k * 4, "Int32Array"]);
  if (w.bias !== undefined) sizes.push(["bias", w.bias, w.n * 2, "Uint16Array"]);
  for (const [name, v, bytes, hostType] of sizes) {
    if (device) {
      if (!(v instanceof DeviceBuffer)) throw new DTypeError(`weights.${name} must be a DeviceBuffer for a GPU call, got ${describe(v)}`);
      if (v.freed) throw new InvalidArgumentError(`weights.${name} was freed`);
      if (v.byteLength < bytes) throw new ShapeError(`weights.${name} holds ${v.byteLength} bytes, needs ${bytes}`);
    } else {
      if (describe(v) !== hostType) throw new DTypeError(`weights.${name} must be a ${hostType} for a CPU call, got ${describe(v)}`);
      if ((v as ArrayBufferView).byteLength < bytes)
        throw new ShapeError(`weights.${name} holds ${(v as ArrayBufferView).byteLength} bytes, needs ${bytes}`);
    }
  }
  if (!device && w.perm) {
    const p = w.perm as Int32Array;
    for (let i = 0; i < w.k; i++) if (p[i] < 0 || p[i] >= w.k) throw new InvalidArgumentError(`perm[${i}] = ${p[i]} is outside [0, k)`);
  }
}

/** The native weight-kind code: 0 u4, 1 u4 with zero points, 2 u8. */
export function weightKind(w: MarlinWeights): number {
  return w.bits === 8 ? 2 : w.zeros !== undefined ? 1 : 0;
}

/**
 * One matmul into a given output. Every argument is checked before anything is launched or
 * written; a bad call throws a typed error and leaves memory untouched.
 */
export function marlinMatmul(args: MarlinMatmulArgs): void {
  if (!args || typeof args !== "object") throw new InvalidArgumentError("marlinMatmul takes an argument object");
  const { x, out, weights: w } = args;
  const dtype = args.dtype ?? "float16";
  checkDType(dtype);
  checkDim("m", args.m);
  const onDevice = isDevice(x as Operand);
  if (onDevice !== isDevice(out as Operand) && (out instanceof DeviceBuffer || out instanceof Uint16Array))
    throw new InvalidArgumentError("x and out must both be DeviceBuffers (GPU) or both Uint16Arrays (CPU)");
  checkWeights(w, onDevice);
  checkOperand("x", x, args.m, w.k, args.xByteOffset ?? 0);
  checkOperand("out", out, args.m, w.n, args.outByteOffset ?? 0);
  const act = dtype === "float16" ? 0 : 1;
  if (onDevice) {
    const dx = x as DeviceBuffer;
    const ws = args.workspace ?? MarlinWorkspace.forDevice(dx.device);
    const wbuf = ws.ensure(args.m, w.n, w.k, w.perm !== undefined, args.stream);
    const h = (b: unknown) => (b as DeviceBuffer | undefined)?.handle ?? null;
    call((a) =>
      a.marlinGemm(
        dx.handle,
        args.xByteOffset ?? 0,
        h(w.qweight),
        h(w.scales),
        h(w.zeros),
        h(w.perm),
        h(w.bias),
        (out as DeviceBuffer).handle,
        args.outByteOffset ?? 0,
        wbuf.handle,
        args.m,
        w.n,
        w.k,
        w.groupSize,
        act,
        weightKind(w),
        args.stream?.handle,
        args.tuning,
      ),
    );
  } else {
    call((a) =>
      a.marlinCpu(
        x as Uint16Array,
        w.qweight,
        w.scales,
        w.zeros ?? null,
        w.perm ?? null,
        w.bias ?? null,
        out as Uint16Array,
        args.m,
        w.n,
        w.k,
        w.groupSize,
        act,
        weightKind(w),
      ),
    );
  }
}
