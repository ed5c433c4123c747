/**
 * A shard on a GPU rank: the GPU twin of ShardLinear (shard-linear.ts). The inner layer may be
 * padded with zero rows (k) or columns (n) to the kernels' shape rules; the input slice is copied
 * into a zeroed scratch of the inner width and the output cropped, each by one pitched device copy
 * on the rank's stream (so the layer stays capturable). A row-parallel shard all-reduces its output.
 */
import { prepareLinear } from "@marlin/core";
import { type DeviceArg, DeviceBuffer, gpuTarget, type Stream, synchronize } from "@marlin/kernel";
import type { GpuLinear } from "../gpu/gpu-layer-ops.js";
import { gpuOps } from "../gpu/gpu-ops.js";
import type { LinearSource } from "../model/weights.js";
import type { DeviceCommunicator } from "./device-communicator.js";
import { type InputPad, NO_PAD } from "./shard.js";
import { chooseShard, type ShardPadding, WrappedLinear } from "./shard-linear.js";

export interface GpuShardOptions {
  gpu: number;
  maxRows: number;
  stream?: Stream;
  /** Row-parallel: sums the shards' outputs after every call. */
  reduce?: DeviceCommunicator;
}

export class GpuShardLinear extends WrappedLinear<GpuLinear, DeviceArg, Stream> {
  readonly padding: ShardPadding;
  private readonly reduce?: DeviceCommunicator;
  private readonly xPad?: DeviceBuffer;
  private readonly yPad?: DeviceBuffer;

  constructor(inner: GpuLinear, n: number, k: number, padding: ShardPadding, gpu: number, reduce?: DeviceCommunicator) {
    super(inner, n, k, inner.name);
    this.padding = padding;
    this.reduce = reduce;
    const R = inner.maxRows;
    if (inner.k !== k) {
      this.xPad = DeviceBuffer.alloc(R * inner.k * 2, gpu);
      // the pad columns are never written again: zero once
      this.xPad.fillBytes(0);
      synchronize(gpu);
    }
    if (inner.n !== n) this.yPad = DeviceBuffer.alloc(R * inner.n * 2, gpu);
  }

  override forward(x: DeviceArg, out: DeviceArg, m: number, stream?: Stream): void {
    const { k, n } = this;
    const K = this.inner.k;
    const N = this.inner.n;
    if (m > 0) {
      const ops = gpuOps();
      let xin = x;
      if (this.xPad) {
        ops.copy2d([this.xPad, this.padding.before * 2], K * 2, x, k * 2, k * 2, m, stream);
        xin = this.xPad;
      }
      const yout = this.yPad ?? out;
      this.inner.forward(xin, yout, m, stream);
      if (this.yPad) ops.copy2d(out, n * 2, this.yPad, N * 2, n * 2, m, stream);
    }
    // every rank reduces, even over no rows, so the ranks' collectives stay in step
    this.reduce?.allReduceSum(out, m * n, "float16");
  }

  override dispose(): void {
    super.dispose();
    this.xPad?.free();
    this.yPad?.free();
  }
}

/** One GPU shard prepared through the registry for `opts.gpu` (the choice of shard-linear.ts's chooseShard). */
export function prepareGpuShard(src: LinearSource, bias: Float32Array | undefined, pad: InputPad = NO_PAD, opts: GpuShardOptions): GpuShardLinear {
  const device = gpuTarget(opts.gpu);
  const c = chooseShard(src, bias, pad, { device, maxRows: opts.maxRows });
  const inner = prepareLinear<DeviceArg, Stream>(c.weights, { device, maxRows: opts.maxRows, stream: opts.stream, activation: "float16" });
  try {
    return new GpuShardLinear(inner, c.n, c.k, c.padding, opts.gpu, opts.reduce);
  } catch (e) {
    inner.dispose();
    throw e;
  }
}
