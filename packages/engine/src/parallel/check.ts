/**
 * tensorParallelSize checked before any weight is read: an integer that divides the heads, and on
 * CUDA a visible device for every rank and, when the ranks have a GPU each, NCCL. Ranks that share
 * a device (tensorParallelDevices with repeats) use the host-staged communicator instead.
 */
import { InvalidArgumentError, NoDeviceError } from "@marlin/core";
import { cudaStatus } from "@marlin/kernel";
import type { ModelConfig } from "../model/config.js";
import { TensorParallelError } from "./communicator.js";
import { checkTensorParallelSize, planLayout } from "./layout.js";
import { ncclStatus } from "./nccl-communicator.js";

export interface TensorParallelPlacement {
  /** Device of each rank. */
  devices: number[];
  communicator: "nccl" | "host";
}

/** Checks tp against the model and (CUDA) the machine; on CUDA with tp > 1, where the ranks go. */
export function checkTensorParallel(
  config: ModelConfig,
  tp: number,
  device: "cpu" | "cuda",
  opts: { devices?: unknown; communicator?: unknown } = {},
): TensorParallelPlacement | undefined {
  checkTensorParallelSize(tp);
  planLayout(config, tp); // heads
  if (opts.communicator !== undefined && opts.communicator !== "nccl" && opts.communicator !== "host")
    throw new InvalidArgumentError(`tensorParallelCommunicator must be "nccl" or "host", got ${JSON.stringify(opts.communicator)}`);
  if (device !== "cuda" || tp === 1) return undefined;
  const gpus = cudaStatus().deviceCount;
  let devices = Array.from({ length: tp }, (_, r) => r);
  if (opts.devices !== undefined) {
    const d = opts.devices;
    if (!Array.isArray(d) || d.length !== tp || !d.every((x) => Number.isInteger(x) && x >= 0))
      throw new InvalidArgumentError(`tensorParallelDevices must list ${tp} device indices (one per rank), got ${JSON.stringify(d)}`);
    devices = d as number[];
  }
  const missing = devices.filter((x) => x >= gpus);
  if (missing.length) {
    const why = opts.devices === undefined ? `tensorParallelSize ${tp} needs ${tp} CUDA devices` : `tensorParallelDevices names device ${missing[0]}`;
    throw new NoDeviceError(`${why}, ${gpus} ${gpus === 1 ? "is" : "are"} visible (CUDA_VISIBLE_DEVICES)`);
  }
  const distinct = new Set(devices).size === tp;
  const communicator = (opts.communicator as "nccl" | "host" | undefined) ?? (distinct ? "nccl" : "host");
  if (communicator === "nccl") {
    if (!distinct) throw new TensorParallelError(`NCCL takes one rank per GPU; tensorParallelDevices ${JSON.stringify(devices)} repeats a device (use tensorParallelCommunicator "host")`);
    const nccl = ncclStatus();
    if (!nccl.available) throw new TensorParallelError(`tensorParallelSize ${tp} on CUDA needs NCCL: ${nccl.reason}`);
  }
  return { devices, communicator };
}
