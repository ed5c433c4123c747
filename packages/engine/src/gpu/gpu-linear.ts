/**
 * Linear layers on the GPU: dense fp16 through cuBLAS (loaded at run time) and 4/8-bit weights
 * through our Marlin kernel (@marlin/kernel's marlinMatmul), both selected through the registry's
 * ops ("dense.matmul", "w4a16.matmul") when a model is loaded.
 */
import { InvalidArgumentError } from "@marlin/core";
import { f32ToF16, packMarlin, type QuantizedLayer } from "@marlin/format";
import { DeviceBuffer as DB, type DeviceBuffer, type DeviceMarlinWeights, type MarlinWorkspace, marlinMatmul, type Stream } from "@marlin/kernel";
import { gpuOps } from "./gpu-ops.js";

export interface GpuLinear {
  readonly n: number;
  readonly k: number;
  readonly kind: "dense" | "marlin";
  /** Bytes of weights streamed per call (for the bandwidth floor). */
  readonly weightBytes: number;
  forward(x: DeviceBuffer, m: number, out: DeviceBuffer, stream: Stream): void;
  dispose(): void;
}

function biasBuffer(bias: Float32Array | undefined, n: number): DeviceBuffer | undefined {
  if (!bias) return undefined;
  if (bias.length !== n) throw new InvalidArgumentError(`bias has ${bias.length} elements, expected ${n}`);
  return DB.from(bias);
}

/** W [n, k] fp16 on the device; y = x W^T (+ b). */
export class DenseGpuLinear implements GpuLinear {
  readonly kind = "dense" as const;
  readonly n: number;
  readonly k: number;
  readonly w: DeviceBuffer;
  readonly bias?: DeviceBuffer;
  constructor(w: DeviceBuffer, n: number, k: number, bias?: Float32Array) {
    if (w.byteLength < n * k * 2) throw new InvalidArgumentError(`dense weight buffer holds ${w.byteLength} bytes, needs ${n * k * 2}`);
    this.w = w;
    this.n = n;
    this.k = k;
    this.bias = biasBuffer(bias, n);
  }
  static fromF32(w: Float32Array, n: number, k: number, bias?: Float32Array): DenseGpuLinear {
    return new DenseGpuLinear(DB.from(f32ToF16(w)), n, k, bias);
  }
  static fromF16(w: Uint16Array, n: number, k: number, bias?: Float32Array): DenseGpuLinear {
    return new DenseGpuLinear(DB.from(w), n, k, bias);
  }
  get weightBytes(): number {
    return this.n * this.k * 2;
  }
  forward(x: DeviceBuffer, m: number, out: DeviceBuffer, stream: Stream): void {
    gpuOps().denseGemm(x, this.w, out, m, this.n, this.k, stream);
    if (this.bias) gpuOps().addBias(out, this.bias, m, this.n, stream);
  }
  /** y = x W^T in fp32 (the logits); no bias. */
  forwardF32(x: DeviceBuffer, m: number, out: DeviceBuffer, stream: Stream): void {
    gpuOps().denseGemmF32(x, this.w, out, m, this.n, this.k, stream);
  }
  dispose(): void {
    this.w.free();
    this.bias?.free();
  }
}

/** Marlin-packed weights on the device. */
export class MarlinGpuLinear implements GpuLinear {
  readonly kind = "marlin" as const;
  readonly n: number;
  readonly k: number;
  readonly weights: DeviceMarlinWeights;
  readonly workspace: MarlinWorkspace;
  readonly bias?: DeviceBuffer;
  constructor(weights: DeviceMarlinWeights, workspace: MarlinWorkspace, bias?: Float32Array) {
    this.weights = weights;
    this.n = weights.n;
    this.k = weights.k;
    this.workspace = workspace;
    this.bias = biasBuffer(bias, weights.n);
  }
  static fromQuantized(layer: QuantizedLayer, workspace: MarlinWorkspace, bias?: Float32Array): MarlinGpuLinear {
    const p = packMarlin(layer);
    const up = (a: ArrayBufferView) => DB.from(a);
    return new MarlinGpuLinear(
      {
        k: p.k,
        n: p.n,
        bits: p.bits,
        groupSize: p.groupSize === p.k ? -1 : p.groupSize,
        qweight: up(p.qweight),
        scales: up(p.scales),
        zeros: p.zeros ? up(p.zeros) : undefined,
        perm: p.perm ? up(p.perm) : undefined,
      },
      workspace,
      bias,
    );
  }
  get weightBytes(): number {
    const w = this.weights;
    const groups = w.groupSize === -1 ? 1 : w.k / w.groupSize;
    return (w.k * w.n * w.bits) / 8 + groups * w.n * 2 + (w.zeros ? (groups * w.n * w.bits) / 8 : 0);
  }
  forward(x: DeviceBuffer, m: number, out: DeviceBuffer, stream: Stream): void {
    marlinMatmul({ x, out, m, weights: this.weights, workspace: this.workspace, stream });
    if (this.bias) gpuOps().addBias(out, this.bias, m, this.n, stream);
  }
  dispose(): void {
    const w = this.weights;
    for (const b of [w.qweight, w.scales, w.zeros, w.perm]) (b as DeviceBuffer | undefined)?.free();
    this.bias?.free();
  }
}
