/**
 * One real layer through the Marlin kernel: layer 0's up_proj of the model (as stored when the
 * checkpoint is quantized, else quantized here to 4 bits, group 128, round to nearest), applied to
 * the token embeddings of a prompt, checked against an fp64 reference of the same quantized weights.
 */
import { explain, formatExplain, type KernelQuery } from "@marlin/core";
import { linearToF32, type ModelSources } from "@marlin/engine";
import { dequantize, f16ToF32, f32ToF16, type QuantizedLayer, quantizeRtn } from "@marlin/format";
import { DeviceBuffer, defaultTarget, hasGpu, MarlinLayer, QUANT_MATMUL_OP, synchronize } from "@marlin/kernel";

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
  const query: KernelQuery = {
    op: QUANT_MATMUL_OP,
    device: target,
    shape: { m, n, k },
    weight: { bits: q.bits, zeroPoints: !q.symmetric },
    groupSize: q.groupSize,
    actOrder: !!q.gIdx,
    activation: "float16",
  };
  const rows = explain(query);
  log(formatExplain(rows));

  const layer = MarlinLayer.fromQuantized(q, { device: hasGpu() ? "cuda" : "cpu" });
  let y: Uint16Array;
  let ms: number;
  try {
    if (hasGpu()) {
      const xd = DeviceBuffer.from(x);
      const out = DeviceBuffer.alloc(m * n * 2);
      layer.forward(xd, { m, out }); // warm-up
      synchronize();
      const t0 = performance.now();
      layer.forward(xd, { m, out });
      synchronize();
      ms = performance.now() - t0;
      y = out.download(new Uint16Array(m * n));
      xd.free();
      out.free();
    } else {
      const t0 = performance.now();
      y = layer.forward(x, { m }) as Uint16Array;
      ms = performance.now() - t0;
    }
  } finally {
    layer.dispose();
  }

  // fp64 reference over the fp16-rounded inputs and the dequantized weights.
  const wq = dequantize(q);
  const xr = f16ToF32(x);
  const got = f16ToF32(y);
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
