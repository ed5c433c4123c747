/** Device discovery: what GPUs this process can use, and registry device targets for them. */

import { availableParallelism } from "node:os";
import { CPU, type CudaDeviceTarget, type DeviceTarget, NoDeviceError } from "@marlin/core";
import { call, type NativeCudaStatus, native } from "./native.js";

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

/** A human-readable report of the devices, for the CLI and the demo. */
export function deviceReport(): string {
  const s = cudaStatus();
  const cuda = (v?: number) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : "n/a");
  const lines = [
    `addon: ${native().builtWithCuda ? `CUDA build (runtime ${cuda(s.runtimeVersion)}, driver ${cuda(s.driverVersion)})` : "CPU-only build"}`,
  ];
  const devs = listDevices();
  if (!devs.length) lines.push(`GPUs: none (${noGpuReason()}); using the CPU path with ${availableParallelism()} threads`);
  for (const d of devs)
    lines.push(
      `GPU ${d.index}: ${d.name}, compute capability ${d.computeCapability}, ${d.smCount} SMs, ${gib(d.totalMemory)}, L2 ${mib(d.l2CacheSize)}, smem/block ${d.sharedMemPerBlockOptin / 1024} KiB`,
    );
  return lines.join("\n");
}
