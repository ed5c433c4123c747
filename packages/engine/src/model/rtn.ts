/**
 * Round-to-nearest 4/8-bit quantization of a dense model's linear layers (not GPTQ): a quick way to
 * get a Marlin-servable model from any dense checkpoint, for tests and demos.
 */
import { quantizeRtn } from "@marlin/format";
import { LINEAR_NAMES, type LinearSource, linearToF32, type ModelSources } from "./weights.js";

export function quantizeSourcesRtn(src: ModelSources, opts: { bits?: 4 | 8; groupSize?: number; symmetric?: boolean } = {}): ModelSources {
  const q = (l: LinearSource): LinearSource => {
    if (l.kind === "quantized") return l;
    const w = linearToF32(l); // [n, k]
    const kn = new Float32Array(l.k * l.n);
    for (let j = 0; j < l.n; j++) for (let i = 0; i < l.k; i++) kn[i * l.n + j] = w[j * l.k + i];
    const layer = quantizeRtn(kn, l.k, l.n, { bits: opts.bits ?? 4, groupSize: opts.groupSize ?? 128, symmetric: opts.symmetric ?? true });
    return { kind: "quantized", n: l.n, k: l.k, layer, bias: l.bias, name: l.name };
  };
  return {
    ...src,
    layers: src.layers.map((layer) => ({
      ...layer,
      linears: Object.fromEntries(LINEAR_NAMES.map((n) => [n, q(layer.linears[n])])) as typeof layer.linears,
    })),
  };
}
