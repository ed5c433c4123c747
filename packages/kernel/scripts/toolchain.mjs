// What the native build finds on this machine: nvcc, and the compute capabilities of its GPUs.
// Shared by build-native.mjs and install.mjs.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** stdout of a command, or undefined when it is missing or fails. */
export function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    return undefined;
  }
}

/** nvcc from CUDACXX, CUDA_HOME / CUDA_PATH, /usr/local/cuda or the PATH; null with MARLIN_NO_CUDA=1. */
export function findNvcc() {
  if (process.env.MARLIN_NO_CUDA === "1") return null;
  const home = process.env.CUDA_HOME || process.env.CUDA_PATH;
  const candidates = [process.env.CUDACXX, home && join(home, "bin", "nvcc"), "/usr/local/cuda/bin/nvcc"];
  candidates.push(sh("sh", ["-c", "command -v nvcc"])?.trim());
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

/** This machine's GPUs as CMake CUDA architectures ("90", "86;89"), or undefined without nvidia-smi. */
export function localGpuArchs() {
  const caps = sh("nvidia-smi", ["--query-gpu=compute_cap", "--format=csv,noheader"]);
  const archs = [...new Set((caps ?? "").split("\n").map((l) => l.trim().replace(".", "")).filter((c) => /^\d+$/.test(c)))];
  return archs.length ? archs.join(";") : undefined;
}
