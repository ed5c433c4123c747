/**
 * One real layer through the registry's pick: layer 0's up_proj of the model (as stored when the
 * checkpoint is quantized, else quantized here to 4 bits, group 128, round to nearest), prepared
 * once for this machine's device and applied to the token embeddings of a prompt, checked against
 * an fp64 reference of the same quantized weights.
 */
import { explain, formatExplain, formatPlan, type LinearWeights, linearQuery, planLinear, prepareLinear, quantizedWeights } from "@marlin/core";
import { linearToF32, type ModelSources } from "@marlin/engine";
import { dequantize, f16ToF32, f32ToF16, type QuantizedLayer, quantizeRtn } from "@marlin/format";
import { type DeviceArg, DeviceBuffer, defaultTarget, hasGpu, type Stream, synchronize } from "@marlin/kernel";

export interface KernelDemoResult {
  m: number;
  n: number;
  k: number;
  relError: number;
  ms: number;
  impl: string;
}

/** The layer as a QuantizedLayer: a quantized checkpoint's own, or RTN 4-bit g128 of dense weights. */
function quantizedUpProj(sources: ModelSources): { q: QuantizedLayer; how: string } {
  const src = sources.layers[0].linears.up_proj;
  if (src.kind === "quantized") return { q: src.layer, how: "as stored in the checkpoint" };
  const { n, k } = src;
  const w = linearToF32(src); // [n, k]
  const wkn = new Float32Array(k * n); // our layout [k, n]
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wkn[c * n + r] = w[r * k + c];
  return { q: quantizeRtn(wkn, k, n, { bits: 4, groupSize: 128, symmetric: true }), how: "4-bit g128 RTN of the fp16 weights" };
}

export async function kernelDemo(sources: ModelSources, tokenIds: number[], log: (s: string) => void): Promise<KernelDemoResult> {
  const { q, how } = quantizedUpProj(sources);
  const { k, n } = q;
  log(`weights: ${how} (${q.bits}-bit, group ${q.groupSize}${q.symmetric ? "" : ", zero points"}${q.gIdx ? ", act-order" : ""})`);

  const m = tokenIds.length;
  const x32 = new Float32Array(m * k);
  for (const [i, id] of tokenIds.entries()) x32.set(sources.embed.subarray(id * k, (id + 1) * k), i * k);
  const x = f32ToF16(x32);

  const target = defaultTarget();
  const weights: LinearWeights = quantizedWeights(q, { name: "model.layers.0.mlp.up_proj" });
  const rows = explain(linearQuery(weights, m, target));
  log(formatExplain(rows));
  log(`plan by rows:\n${formatPlan(planLinear(weights, { device: target, maxRows: 4096 }))}`);

  let y: Float32Array;
  let ms: number;
  if (hasGpu()) {
    const layer = prepareLinear<DeviceArg, Stream>(weights, { device: target, maxRows: m });
    const xd = DeviceBuffer.from(x);
    const out = DeviceBuffer.alloc(m * n * 2);
    try {
      layer.forward(xd, out, m); // warm-up
      synchronize();
      const t0 = performance.now();
      layer.forward(xd, out, m);
      synchronize();
      ms = performance.now() - t0;
      y = f16ToF32(out.download(new Uint16Array(m * n)));
    } finally {
      xd.free();
      out.free();
      layer.dispose();
    }
  } else {
    const layer = prepareLinear<Float32Array>(weights, { device: target, maxRows: m });
    try {
      y = new Float32Array(m * n);
      const t0 = performance.now();
      layer.forward(f16ToF32(x), y, m);
      ms = performance.now() - t0;
    } finally {
      layer.dispose();
    }
  }

  // fp64 reference over the fp16-rounded inputs and the dequantized weights.
  const wq = dequantize(q);
  const xr = f16ToF32(x);
  const got = y;
  let num = 0;
  let den = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let c = 0; c < k; c++) acc += xr[i * k + c] * wq[c * n + j];
      num += (got[i * n + j] - acc) ** 2;
      den += acc * acc;
    }
  return { m, n, k, relError: Math.sqrt(num / den), ms, impl: rows.find((r) => r.selected)?.id ?? "?" };
}
