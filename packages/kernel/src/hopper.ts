/**
 * The Hopper (sm_90a) wgmma kernel: out[m, n] = x[m, k] * dequant(W)[k, n] (+ bias) on compute
 * capability 9.0 GPUs, reading the same Marlin-layout weights as `marlinMatmul` (no second copy:
 * prepare a layer once with @marlin/format and use either kernel). It wins from m of a few dozen
 * rows up (batched decode, prefill); the mma.sync kernel stays the choice for small m.
 *
 * What it takes: 4-bit (symmetric or with zero points) or 8-bit symmetric weights, group size -1,
 * 32, 64 or 128, act-order, bias, fp16 or bf16; n a multiple of 128 (256 for its widest tile),
 * k a multiple of 128. `hopperShapeRefusal` says why a shape is refused.
 */
import { InvalidArgumentError, NoDeviceError } from "@marlin/core";
import { marlinShapeRefusal } from "./marlin.js";
import { call, native } from "./native.js";
import { checkDim } from "./operand.js";
import { checkDeviceQuantCall, type DeviceQuantCall, nativeQuantArgs } from "./quant-call.js";
import { MarlinWorkspace } from "./workspace.js";

export interface HopperStatus {
  /** The addon holds the sm_90a kernel (built with 90 among MARLIN_CUDA_ARCHS). */
  built: boolean;
  /** The kernel can run on this device now (built, compute capability 9.0, tensor-map support). */
  available: boolean;
  reason?: string;
  /** Compute capability as 10 * major + minor, when a device answered. */
  capability?: number;
}

const statusCache = new Map<number, HopperStatus>();

/** Whether the wgmma kernel can run on `device` (never throws; cached per device). */
export function hopperStatus(device = 0): HopperStatus {
  let s = statusCache.get(device);
  if (s) return s;
  try {
    s = call((a) => a.hopperStatus(device)) as HopperStatus;
  } catch (err) {
    s = { built: false, available: false, reason: (err as Error).message };
  }
  statusCache.set(device, s);
  return s;
}

/** Why the wgmma kernel cannot take this shape and weight type, or undefined when it can. */
export function hopperShapeRefusal(p: { n: number; k: number; bits: number; groupSize: number; zeroPoints: boolean }): string | undefined {
  const base = marlinShapeRefusal(p);
  if (base) return base;
  if (p.n % 128 !== 0) return `n = ${p.n} is not a multiple of 128 (the wgmma kernel's smallest feature tile)`;
  return undefined;
}

/** Overrides for benchmarks and tests (leave empty for the automatic choice). */
export interface HopperTuning {
  /** Token tile: 64 or 128 rows. */
  bm?: 64 | 128;
  /** At most this many blocks (one per SM at most). */
  maxGrid?: number;
}

export interface HopperMatmulArgs extends DeviceQuantCall {
  /** Scratch (defaults to the device's shared Marlin workspace, which both kernels can use). */
  workspace?: MarlinWorkspace;
  tuning?: HopperTuning;
}

/** Workspace bytes the kernel needs for this problem on `device` (counters, partial tiles, act-order copy). */
export function hopperWorkspaceBytes(m: number, n: number, k: number, actOrder: boolean, device = 0): number {
  return call((a) => a.hopperWorkspaceBytes(m, n, k, actOrder, device)) as number;
}

function checkTuning(t: HopperTuning | undefined): void {
  if (t === undefined) return;
  if (typeof t !== "object" || t === null) throw new InvalidArgumentError("tuning must be an object");
  if (t.bm !== undefined && t.bm !== 64 && t.bm !== 128) throw new InvalidArgumentError(`tuning.bm must be 64 or 128, got ${String(t.bm)}`);
  if (t.maxGrid !== undefined) checkDim("tuning.maxGrid", t.maxGrid);
}

/**
 * One matmul on the wgmma kernel, queued on the stream. Every argument is checked before anything is
 * allocated or launched; a device that cannot run the kernel gives a NoDeviceError with the reason.
 */
export function hopperMatmul(args: HopperMatmulArgs): void {
  const dtype = checkDeviceQuantCall("hopperMatmul", args, (w) =>
    hopperShapeRefusal({ n: w.n, k: w.k, bits: w.bits, groupSize: w.groupSize, zeroPoints: w.zeros !== undefined }),
  );
  checkTuning(args.tuning);
  const { x, weights: w } = args;
  const status = hopperStatus(x.device);
  if (!status.available) throw new NoDeviceError(`the wgmma kernel cannot run on device ${x.device}: ${status.reason ?? "unavailable"}`);
  const ws = args.workspace ?? MarlinWorkspace.forDevice(x.device);
  const buf = ws.ensureBytes(hopperWorkspaceBytes(args.m, w.n, w.k, w.perm !== undefined, x.device), args.stream);
  call((a) => a.hopperGemm(...nativeQuantArgs(args, dtype, buf), args.tuning));
}

/** True when the addon exports the Hopper entry points (older prebuilt addons do not). */
export function hasHopperBindings(): boolean {
  try {
    return typeof native().hopperGemm === "function";
  } catch {
    return false;
  }
}
