/**
 * tensorParallelSize checked before any weight is read: an integer that divides the heads, and on
 * CUDA one visible GPU per rank and NCCL present. The sharded GPU runner does not exist yet (see
 * README.md), so CUDA with tp > 1 ends in a TensorParallelError that says so.
 */
import { NoDeviceError } from "@marlin/core";
import { cudaStatus } from "@marlin/kernel";
import type { ModelConfig } from "../model/config.js";
import { TensorParallelError } from "./communicator.js";
import { checkTensorParallelSize, planLayout } from "./layout.js";
import { ncclStatus } from "./nccl-communicator.js";

export function checkTensorParallel(config: ModelConfig, tp: number, device: "cpu" | "cuda"): void {
  checkTensorParallelSize(tp);
  planLayout(config, tp); // heads
  if (device !== "cuda" || tp === 1) return;
  const gpus = cudaStatus().deviceCount;
  if (gpus < tp) throw new NoDeviceError(`tensorParallelSize ${tp} needs ${tp} CUDA devices, ${gpus} ${gpus === 1 ? "is" : "are"} visible (CUDA_VISIBLE_DEVICES)`);
  const nccl = ncclStatus();
  if (!nccl.available) throw new TensorParallelError(`tensorParallelSize ${tp} on CUDA needs NCCL: ${nccl.reason}`);
  throw new TensorParallelError(
    `tensorParallelSize ${tp} on CUDA: NCCL ${nccl.version} and ${gpus} GPUs are present, but this build has no sharded GPU runner yet; run device "cpu" or tensorParallelSize 1`,
  );
}
