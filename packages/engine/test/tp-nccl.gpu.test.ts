// NCCL between GPUs (one worker thread per rank): all-reduce and all-gather results, and the load
// errors of tensorParallelSize on CUDA (the sharded runner itself: tp-gpu.gpu.test.ts). Skips, saying why, without two GPUs and libnccl.
import { Worker } from "node:worker_threads";
import { NoDeviceError } from "@marlin/core";
import { cudaStatus } from "@marlin/kernel";
import { describe, expect, test } from "vitest";
import { LLM, NcclCommunicator, ncclStatus } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

function gpuCount(): number {
  try {
    return cudaStatus().deviceCount;
  } catch {
    return 0;
  }
}
const gpus = gpuCount();
const nccl = ncclStatus();
const skip = gpus < 2 ? `${gpus} CUDA device(s) visible, 2 needed` : !nccl.available ? `NCCL unavailable: ${nccl.reason}` : undefined;
if (skip) console.log(`tensor-parallel GPU tests skipped: ${skip}`);

describe.skipIf(!!skip)("NCCL communicator across GPUs", () => {
  test("all-reduce (sum) and all-gather over every visible GPU, fp32", async () => {
    const tp = gpus;
    const count = 1000;
    const id = NcclCommunicator.uniqueId();
    const url = new URL("./fixtures/nccl-rank.mjs", import.meta.url);
    const workers = Array.from({ length: tp }, (_, rank) => new Worker(url, { workerData: { id, tp, rank, count } }));
    const got = await Promise.all(workers.map((w) => new Promise<{ error?: string; reduced: number[]; gathered: number[]; wrongDevice: string }>((res, rej) => {
          w.once("message", res);
          w.once("error", rej);
        })));
    await Promise.all(workers.map((w) => w.terminate()));
    const part = (r: number) => Array.from(Float32Array.from({ length: count }, (_, i) => (r + 1) * 0.5 + i * 0.25));
    const sum = Array.from({ length: count }, (_, i) => Array.from({ length: tp }, (_, r) => part(r)[i]).reduce((a, b) => a + b, 0));
    for (const g of got) {
      expect(g.error).toBeUndefined();
      expect(g.reduced).toEqual(sum); // exact: small multiples of 0.25
      expect(g.gathered).toEqual(Array.from({ length: tp }, (_, r) => part(r)).flat());
      expect(g.wrongDevice).toBe("ERR_MARLIN_INVALID_ARGUMENT");
    }
  });

  test.skipIf(!hasTinyLlama())("tensorParallelSize on CUDA: a rank on a device that is not there is a NoDeviceError", async () => {
    await expect(LLM.load(tinyLlamaDir(), { device: "cuda", tensorParallelSize: 2, tensorParallelDevices: [0, gpus] })).rejects.toThrow(NoDeviceError);
  });
});

describe.skipIf(gpus > 0)("tensorParallelSize on a machine without GPUs", () => {
  test.skipIf(!hasTinyLlama())("device cuda is refused before any weight is read", async () => {
    await expect(LLM.load(tinyLlamaDir(), { device: "cuda", tensorParallelSize: 2 })).rejects.toThrow(NoDeviceError);
  });
  test("ncclStatus says why NCCL is not usable", () => {
    expect(nccl.available).toBe(false);
    expect(nccl.reason).toMatch(/without CUDA|libnccl|NCCL/);
  });
});
