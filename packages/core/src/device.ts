/** Where an implementation runs: a CUDA device with its facts, or the CPU. */
export type DeviceTarget = CudaDeviceTarget | CpuDeviceTarget;

export interface CudaDeviceTarget {
  kind: "cuda";
  /** Compute capability as major * 10 + minor: 80 for sm_80, 90 for sm_90. */
  capability: number;
  smCount: number;
  index?: number;
  name?: string;
}

export interface CpuDeviceTarget {
  kind: "cpu";
  threads?: number;
}

export const CPU: CpuDeviceTarget = Object.freeze({ kind: "cpu" });

export function describeDevice(d: DeviceTarget): string {
  if (d.kind === "cpu") return "cpu";
  const cc = `sm_${d.capability}`;
  return d.name ? `${d.name} (${cc}, ${d.smCount} SMs)` : `${cc} (${d.smCount} SMs)`;
}
