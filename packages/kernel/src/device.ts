/** Device discovery: what GPUs this process can use, and registry device targets for them. */

import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { CPU, type CudaDeviceTarget, type DeviceTarget, NoDeviceError } from "@marlin/core";
import { call, NATIVE_PATH_ENV, type NativeCudaStatus, type NativeInfo, native, nativeInfo } from "./native.js";

export interface GpuInfo {
  index: number;
  name: string;
  /** major * 10 + minor, e.g. 90 */
  capability: number;
  /** "9.0" */
  computeCapability: string;
  smCount: number;
  totalMemory: number;
  l2CacheSize: number;
  sharedMemPerBlockOptin: number;
  sharedMemPerSm: number;
  memoryBusWidth: number;
}

export type CudaStatus = NativeCudaStatus;

/** Whether the addon was built with CUDA, how many devices it sees, and why none if so. */
export function cudaStatus(): CudaStatus {
  return call((n) => n.cudaStatus());
}

/** Every CUDA device; empty on a machine without one (never throws for that). */
export function listDevices(): GpuInfo[] {
  const status = cudaStatus();
  const out: GpuInfo[] = [];
  for (let i = 0; i < status.deviceCount; i++) {
    const d = call((n) => n.deviceInfo(i));
    out.push({ ...d, capability: d.major * 10 + d.minor, computeCapability: `${d.major}.${d.minor}` });
  }
  return out;
}

let gpuCache: boolean | undefined;
/** True when the addon has CUDA and at least one device is present. */
export function hasGpu(): boolean {
  if (gpuCache === undefined) {
    try {
      gpuCache = cudaStatus().deviceCount > 0;
    } catch {
      gpuCache = false;
    }
  }
  return gpuCache;
}

/** Why there is no GPU, for test skips and logs; undefined when there is one. */
export function noGpuReason(): string | undefined {
  let s: CudaStatus;
  try {
    s = cudaStatus();
  } catch (err) {
    return `native addon unavailable: ${(err as Error).message}`;
  }
  if (s.deviceCount > 0) return undefined;
  if (!s.builtWithCuda) return "the addon was built without CUDA";
  return `no CUDA device (${s.error ?? "none found"}${s.message ? `: ${s.message}` : ""})`;
}

/** The registry target for a device index, or the CPU target. */
export function gpuTarget(index = 0): CudaDeviceTarget {
  const d = listDevices()[index];
  if (!d) throw new NoDeviceError(`CUDA device ${index} is not available${noGpuReason() ? `: ${noGpuReason()}` : ""}`);
  return { kind: "cuda", capability: d.capability, smCount: d.smCount, index: d.index, name: d.name };
}

/** The best target here: GPU 0 when present, else the CPU. */
export function defaultTarget(): DeviceTarget {
  return hasGpu() ? gpuTarget(0) : { ...CPU, threads: availableParallelism() };
}

export function memInfo(device = 0): { free: number; total: number } {
  return call((n) => n.memInfo(device));
}

/** Waits for all queued work on a device; asynchronous kernel faults surface here as CudaError. */
export function synchronize(device = 0): void {
  call((n) => n.synchronize(device));
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** Where the addon came from, e.g. "prebuild marlin-cuda.node (sm 80-real;86-real;89-real;90, CUDA 13.0)". */
function addonOrigin(i: NativeInfo): string {
  const m = i.meta;
  const built = m?.backend === "cuda" ? ` (sm ${m.cudaArchs ?? "?"}, CUDA ${m.cudaVersion ?? "?"})` : "";
  const what = i.origin === "env" ? `${NATIVE_PATH_ENV}=` : i.origin === "local" ? "local build " : "prebuild ";
  return `${what}${i.origin === "env" ? i.path : basename(i.path ?? "")}${built}`;
}

/** A human-readable report of the addon and the devices, for the CLI and the demo. Never throws. */
export function deviceReport(): string {
  const info = nativeInfo();
  const notUsed = info.rejected.map((r) => `  not used: ${basename(r.path)}: ${r.reason}`);
  if (!info.path) return [`addon: none; neither the GPU nor the CPU path can run (${info.error})`, ...notUsed].join("\n");
  const s = cudaStatus();
  const cuda = (v?: number) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : "n/a");
  const build = native().builtWithCuda ? `CUDA build (runtime ${cuda(s.runtimeVersion)}, driver ${cuda(s.driverVersion)})` : "CPU-only build";
  const lines = [`addon: ${build}, ${addonOrigin(info)}`, ...notUsed];
  const devs = listDevices();
  if (!devs.length) lines.push(`GPUs: none (${noGpuReason()}); using the CPU path with ${availableParallelism()} threads`);
  for (const d of devs)
    lines.push(
      `GPU ${d.index}: ${d.name}, compute capability ${d.computeCapability}, ${d.smCount} SMs, ${gib(d.totalMemory)}, L2 ${mib(d.l2CacheSize)}, smem/block ${d.sharedMemPerBlockOptin / 1024} KiB`,
    );
  return lines.join("\n");
}
