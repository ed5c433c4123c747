/**
 * Registers this package's linear implementations (linear-impls.ts) into @marlin/core's registry:
 *  - op "quant.matmul": "dequant.cublas" (large m), "marlin.hopper" (sm_90a wgmma, m from 33),
 *    "marlin.cuda" (compute capability 8.0+), "marlin.cpu", and the dequantized fallbacks
 *    "dequant.dense" / "dequant.dense.cuda";
 *  - op "dense.matmul": "cublas.fp16" (CUDA, cuBLAS loaded at run time) and "dense.cpu".
 * registerKernels() is idempotent and runs on import of the package.
 */
import { registry } from "@marlin/core";
import { dequantCublas, marlinHopper } from "./hopper-impls.js";
import { cublasFp16, denseCpu, dequantDense, dequantDenseCuda, marlinCpu, marlinCuda } from "./linear-impls.js";

export { DENSE_MATMUL_OP, QUANT_MATMUL_OP } from "./linear-impls.js";

/** Registers this package's implementations once per process. */
export function registerKernels(): void {
  for (const impl of [dequantCublas, marlinHopper, marlinCuda, marlinCpu, dequantDense, dequantDenseCuda, cublasFp16, denseCpu])
    if (!registry.has(impl.id)) registry.register(impl);
}

registerKernels();
