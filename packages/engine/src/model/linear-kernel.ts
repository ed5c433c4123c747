/** The registry's pick for a linear layer ("dense.matmul" / "quant.matmul") on a device. */
import { type DeviceTarget, type KernelQuery, select } from "@marlin/core";
import type { LinearSource } from "./weights.js";

/** Throws NoKernelError (with every candidate's reason) when nothing fits. */
export function selectLinearKernel(src: LinearSource, m: number, device: DeviceTarget): string {
  const q: KernelQuery =
    src.kind === "dense"
      ? { op: "dense.matmul", device, shape: { m, n: src.n, k: src.k }, activation: "float16" }
      : {
          op: "quant.matmul",
          device,
          shape: { m, n: src.n, k: src.k },
          weight: { bits: src.layer.bits as 4 | 8, zeroPoints: !src.layer.symmetric },
          groupSize: src.layer.groupSize,
          actOrder: !!src.layer.gIdx,
          activation: "float16",
        };
  return select(q).id;
}
