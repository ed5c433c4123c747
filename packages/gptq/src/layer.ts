/** Conversion of a GPTQ/RTN result into @marlin/format's QuantizedLayer (what packMarlin and toGptq take). */
import { numberToF16, type QuantizedLayer, validateLayer } from "@marlin/format";
import type { QuantResult } from "./result.js";

/**
 * The result as a QuantizedLayer: scales as fp16 bits (exact: they are fp16 values already), zeros
 * only when asymmetric, g_idx only when act-order made it non-monotone (static groups and plain
 * order keep floor(i / groupSize)). Validated before it is returned.
 */
export function toQuantizedLayer(r: QuantResult): QuantizedLayer {
  const scales = new Uint16Array(r.scales.length);
  for (let i = 0; i < scales.length; i++) scales[i] = numberToF16(r.scales[i]);
  const layer: QuantizedLayer = { k: r.k, n: r.n, bits: r.bits, groupSize: r.groupSize, symmetric: r.symmetric, q: r.q, scales };
  if (!r.symmetric) layer.zeros = r.zeros;
  if (r.actOrder && !r.staticGroups && r.groupSize > 0) layer.gIdx = r.gIdx;
  validateLayer(layer);
  return layer;
}
