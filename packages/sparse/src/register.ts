/**
 * Registers the "sparse24" weight kind and its implementations (impls.ts) into @marlin/core's one
 * registry. Idempotent; runs on import of the package. Importing @marlin/kernel first also
 * registers the dense implementations the fallbacks use.
 */
import { registry } from "@marlin/core";
import { registerKernels } from "@marlin/kernel";
import { sparse24Cpu, sparse24Cuda, sparse24Dequant, sparse24DequantCuda } from "./impls.js";
import { registerSparse24Kind } from "./weights.js";

export function registerSparse24(): void {
  registerKernels();
  registerSparse24Kind();
  for (const impl of [sparse24Cuda, sparse24Cpu, sparse24Dequant, sparse24DequantCuda]) if (!registry.has(impl.id)) registry.register(impl);
}

registerSparse24();
