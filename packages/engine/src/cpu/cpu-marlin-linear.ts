/**
 * A quantized linear layer on the CPU through our Marlin CPU path (@marlin/kernel, placement
 * "cpu"): the 4/8-bit weights stay packed in memory (no fp32 copy, 8x smaller for 4-bit), the
 * activations are rounded to fp16 as on the GPU, products accumulate in fp32 (batch-invariant).
 */
import { ShapeError } from "@marlin/core";
import { f16ToF32, f32ToF16, type QuantizedLayer } from "@marlin/format";
import { MarlinLayer } from "@marlin/kernel";

export class CpuMarlinLinear {
  readonly n: number;
  readonly k: number;
  readonly bias: Float32Array | null;
  private readonly layer: MarlinLayer;

  constructor(q: QuantizedLayer, bias: Float32Array | null = null) {
    if (bias && bias.length !== q.n) throw new ShapeError(`bias has ${bias.length} elements, expected ${q.n}`);
    this.layer = MarlinLayer.fromQuantized(q, { device: "cpu" });
    this.n = q.n;
    this.k = q.k;
    this.bias = bias;
  }

  /** out[m, n] = x[m, k] W^T + b (x and out fp32; x rounded to fp16 for the kernel). */
  forward(x: Float32Array, m: number, out: Float32Array): Float32Array {
    const { n, k } = this;
    if (x.length < m * k || out.length < m * n) throw new ShapeError(`x needs ${m}x${k} and out ${m}x${n} elements`);
    const y = this.layer.forward(f32ToF16(x.subarray(0, m * k)), { m }) as Uint16Array;
    out.set(f16ToF32(y));
    if (this.bias) for (let r = 0; r < m; r++) for (let j = 0; j < n; j++) out[r * n + j] += this.bias[j];
    return out;
  }

  dispose(): void {
    this.layer.dispose();
  }
}
