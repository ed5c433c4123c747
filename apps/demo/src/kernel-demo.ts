/**
 * One real layer through the Marlin kernel: layer 0's up_proj of the model, quantized to 4 bits
 * (group 128, round to nearest), applied to the token embeddings of a prompt, checked against an
 * fp64 reference of the same quantized weights.
 */
import { explain, formatExplain, type KernelQuery } from "@marlin/core";
import { type Checkpoint, dequantize, f16ToF32, f32ToF16, quantizeRtn } from "@marlin/format";
import { DeviceBuffer, defaultTarget, hasGpu, MarlinLayer, QUANT_MATMUL_OP, synchronize } from "@marlin/kernel";

export interface KernelDemoResult {
  m: number;
  n: number;
  k: number;
  relError: number;
  ms: number;
  impl: string;
}

async function readF32(ckpt: Checkpoint, name: string): Promise<{ data: Float32Array; shape: number[] }> {
  const t = await ckpt.read(name);
  if (t.dtype === "float32") return { data: t.data as Float32Array, shape: t.shape };
  if (t.dtype !== "float16") throw new Error(`${name}: the demo reads fp16 or fp32 weights, got ${t.dtype}`);
  return { data: f16ToF32(t.data as Uint16Array), shape: t.shape };
}

export async function kernelDemo(ckpt: Checkpoint, tokenIds: number[], log: (s: string) => void): Promise<KernelDemoResult> {
  const w = await readF32(ckpt, "model.layers.0.mlp.up_proj.weight"); // torch layout [n, k]
  const [n, k] = w.shape;
  const wkn = new Float32Array(k * n); // our layout [k, n]
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wkn[c * n + r] = w.data[r * k + c];
  const q = quantizeRtn(wkn, k, n, { bits: 4, groupSize: 128, symmetric: true });

  const emb = await readF32(ckpt, "model.embed_tokens.weight");
  const m = tokenIds.length;
  const x32 = new Float32Array(m * k);
  for (const [i, id] of tokenIds.entries()) x32.set(emb.data.subarray(id * k, (id + 1) * k), i * k);
  const x = f32ToF16(x32);

  const target = defaultTarget();
  const query: KernelQuery = {
    op: QUANT_MATMUL_OP,
    device: target,
    shape: { m, n, k },
    weight: { bits: 4, zeroPoints: false },
    groupSize: 128,
    actOrder: false,
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
