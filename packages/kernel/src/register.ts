/**
 * Registry entries of this package (@marlin/core's dispatch registry):
 *  - op "quant.matmul": "marlin.cuda" (compute capability 8.0+) and "marlin.cpu";
 *  - op "dense.matmul": "cublas.fp16" (CUDA, cuBLAS loaded at run time) and "dense.cpu".
 * registerKernels() is idempotent and runs on import of the package.
 */
import { FITS, type Fit, type Implementation, type KernelQuery, refuse, registry } from "@marlin/core";
import { cublasStatus } from "./dense.js";
import { marlinShapeRefusal } from "./marlin.js";
import { native } from "./native.js";

export const QUANT_MATMUL_OP = "quant.matmul";
export const DENSE_MATMUL_OP = "dense.matmul";

function builtWithCuda(): boolean {
  try {
    return native().builtWithCuda === true;
  } catch {
    return false;
  }
}

/** What every matmul needs from a query: a shape and a 16-bit activation dtype. */
function matmulFit(q: KernelQuery): Fit {
  if (!q.shape) return refuse("the query has no shape");
  if (q.activation && q.activation !== "float16" && q.activation !== "bfloat16")
    return refuse(`activation ${q.activation} is not supported (float16, bfloat16)`);
  return FITS;
}

/** CUDA implementations: the addon must have CUDA, and bf16 tensor-core math needs sm_80. */
function cudaFit(q: KernelQuery): Fit {
  if (!builtWithCuda()) return refuse("the addon was built without CUDA");
  if (q.activation === "bfloat16" && q.device.kind === "cuda" && q.device.capability < 80) return refuse("bf16 needs sm_80");
  return FITS;
}

function marlinFit(q: KernelQuery): Fit {
  const base = matmulFit(q);
  if (!base.ok) return base;
  if (!q.weight) return refuse("the query has no weight type");
  const shape = q.shape!;
  if (!Number.isSafeInteger(shape.m) || shape.m < 1) return refuse(`m = ${shape.m} must be >= 1`);
  const why = marlinShapeRefusal({
    n: shape.n,
    k: shape.k,
    bits: q.weight.bits,
    groupSize: q.groupSize ?? -1,
    zeroPoints: q.weight.zeroPoints,
  });
  if (why) return refuse(why);
  if (q.actOrder && (q.groupSize ?? -1) === -1) return refuse("act-order needs a group size");
  return FITS;
}

export const marlinCuda: Implementation = {
  id: "marlin.cuda",
  op: QUANT_MATMUL_OP,
  priority: 100,
  devices: { kind: "cuda", minCapability: 80 },
  description: "Marlin FP16/BF16 x INT4/INT8 tensor-core kernel (mma.sync, cp.async pipeline, striped split-k)",
  canImplement(q) {
    const cuda = cudaFit(q);
    return cuda.ok ? marlinFit(q) : cuda;
  },
};

export const marlinCpu: Implementation = {
  id: "marlin.cpu",
  op: QUANT_MATMUL_OP,
  priority: 10,
  devices: { kind: "cpu" },
  description: "multi-threaded C++ path over the same packed layout (fp32 accumulation, batch invariant)",
  canImplement: marlinFit,
};

export const cublasFp16: Implementation = {
  id: "cublas.fp16",
  op: DENSE_MATMUL_OP,
  priority: 100,
  devices: { kind: "cuda", minCapability: 70 },
  description: "cuBLAS GemmEx, fp32 accumulation, W row-major [k, n]",
  canImplement(q) {
    const cuda = cudaFit(q);
    if (!cuda.ok) return cuda;
    const s = cublasStatus();
    if (!s.available) return refuse(s.reason ?? "cuBLAS is not available");
    if (q.shape && (q.shape.n % 8 !== 0 || q.shape.k % 8 !== 0)) return refuse("n and k must be multiples of 8");
    return matmulFit(q);
  },
};

export const denseCpu: Implementation = {
  id: "dense.cpu",
  op: DENSE_MATMUL_OP,
  priority: 10,
  devices: { kind: "cpu" },
  description: "multi-threaded C++ dense matmul (fp32 accumulation, batch invariant)",
  canImplement: matmulFit,
};

/** Registers this package's implementations once per process. */
export function registerKernels(): void {
  for (const impl of [marlinCuda, marlinCpu, cublasFp16, denseCpu]) if (!registry.has(impl.id)) registry.register(impl);
}

registerKernels();
