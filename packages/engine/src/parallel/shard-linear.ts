/**
 * A shard prepared through the registry, checked per shard: its own k and n are what the registry
 * is asked. When a shard's shape breaks the rules of the implementation that would serve it best
 * (Marlin: k % 128, n % 64, the vLLM complaint `input_size_per_partition=10944 not divisible by
 * 128`), it is padded with zero rows / columns to the next multiple, and the padded layer is taken
 * if the registry then picks a higher-priority implementation for some m (or the unpadded shard
 * has none at all). ShardLinear hides the padding: callers see the shard's logical k and n.
 *
 * A row-parallel shard also owns its all-reduce (as vLLM's RowParallelLinear does), so the decoder
 * of model/llama.ts runs unchanged over sharded layers.
 */
import {
  type DeviceTarget,
  DispatchedLinear,
  InvalidArgumentError,
  NoKernelError,
  type PlanRange,
  planLinear,
  prepareLinear,
  registry,
  SharedResources,
} from "@marlin/core";
import { type LinearSource, toLinearWeights } from "../model/weights.js";
import type { Communicator } from "./communicator.js";
import { type InputPad, NO_PAD, paddedShape, padSource } from "./shard.js";

export interface ShardPrepareOptions {
  device: DeviceTarget;
  maxRows: number;
  /** Row-parallel: sums the shards' outputs after every call. */
  reduce?: Communicator;
}

/** Where a shard's inner layer has zero rows and columns (inner k = before + k + after). */
export interface ShardPadding {
  before: number;
  after: number;
  /** Zero output columns (cropped). */
  nAfter: number;
}

/**
 * A layer of its own shape (n, k, name) over one prepared inner layer: its rows, its picks and the
 * weight bytes it streams are the inner layer's, and disposing it disposes the inner layer.
 */
export abstract class WrappedLinear<I extends DispatchedLinear<B, S>, B = Float32Array, S = unknown> extends DispatchedLinear<B, S> {
  constructor(
    readonly inner: I,
    n: number,
    k: number,
    name: string,
  ) {
    super(n, k, name, [...inner.plan], [], new SharedResources());
  }
  override get maxRows(): number {
    return this.inner.maxRows;
  }
  override implementationFor(m: number): string {
    return this.inner.implementationFor(m);
  }
  override weightBytes(m = 1): number {
    return this.inner.weightBytes(m);
  }
  abstract override forward(x: B, out: B, m: number, stream?: S): void;
  override dispose(): void {
    this.inner.dispose();
  }
}

export class ShardLinear extends WrappedLinear<DispatchedLinear<Float32Array>> {
  readonly padding: ShardPadding;
  private readonly reduce?: Communicator;
  private xPad = new Float32Array(0);
  private yPad = new Float32Array(0);

  constructor(inner: DispatchedLinear<Float32Array>, n: number, k: number, padding: ShardPadding, reduce?: Communicator) {
    super(inner, n, k, inner.name);
    if (padding.before + k + padding.after !== inner.k || n + padding.nAfter !== inner.n)
      throw new InvalidArgumentError(`${inner.name}: padding ${JSON.stringify(padding)} does not map ${k}x${n} onto ${inner.k}x${inner.n}`);
    this.padding = padding;
    this.reduce = reduce;
  }

  get padded(): boolean {
    return this.inner.k !== this.k || this.inner.n !== this.n;
  }

  override forward(x: Float32Array, out: Float32Array, m: number): void {
    const { k, n } = this;
    const K = this.inner.k;
    const N = this.inner.n;
    if (m > 0) {
      let xin = x;
      if (K !== k) {
        // only the slice's columns are written: the pad columns stay zero from allocation
        if (this.xPad.length < m * K) this.xPad = new Float32Array(m * K);
        xin = this.xPad;
        for (let r = 0; r < m; r++) xin.set(x.subarray(r * k, r * k + k), r * K + this.padding.before);
      }
      let yout = out;
      if (N !== n) {
        if (this.yPad.length < m * N) this.yPad = new Float32Array(m * N);
        yout = this.yPad;
      }
      this.inner.forward(xin, yout, m);
      if (yout !== out) for (let r = 0; r < m; r++) out.set(yout.subarray(r * N, r * N + n), r * n);
    }
    // every rank reduces, even over no rows, so the ranks' collectives stay in step
    this.reduce?.allReduceSum(out, m * n);
  }
}

function tryPlan(src: LinearSource, bias: Float32Array | undefined, opts: Omit<ShardPrepareOptions, "reduce">): PlanRange[] | undefined {
  try {
    return planLinear(toLinearWeights(src, bias), { device: opts.device, maxRows: opts.maxRows, activation: "float16" });
  } catch (e) {
    if (e instanceof NoKernelError) return undefined;
    throw e;
  }
}

const priorityOf = (id: string) => registry.get(id)?.priority ?? Number.NEGATIVE_INFINITY;

/** true when, at some m, plan b's pick has a higher priority than plan a's. */
function outranks(b: PlanRange[], a: PlanRange[]): boolean {
  for (const r of b) {
    const other = a.find((x) => x.from <= r.to && r.to <= x.to);
    if (other && priorityOf(r.id) > priorityOf(other.id)) return true;
  }
  return false;
}

/** What a shard runs: the (maybe further padded) weights, the shard's logical n and k, and where the zeros are. */
export interface ShardChoice {
  weights: ReturnType<typeof toLinearWeights>;
  n: number;
  k: number;
  padding: ShardPadding;
}

/**
 * Picks what one shard runs (k = pad.before + logical k + pad.after zero-padded already by
 * shardRows): the shard itself, or the shard padded further to the kernels' shape rules when that
 * gets it a better implementation (or the shard alone has none).
 */
export function chooseShard(src: LinearSource, bias: Float32Array | undefined, pad: InputPad, opts: Omit<ShardPrepareOptions, "reduce">): ShardChoice {
  const k = src.k - pad.before - pad.after;
  const n = src.n;
  const natural = tryPlan(src, bias, opts);
  const shape = paddedShape(src);
  let use = src;
  if (shape.k !== src.k || shape.n !== src.n) {
    const padded = padSource({ ...src, bias }, shape.k, shape.n);
    const plan = padded && tryPlan(padded, padded.bias, opts);
    if (padded && plan && (!natural || outranks(plan, natural))) use = padded;
  }
  const weights = toLinearWeights(use, use === src ? bias : use.bias);
  return { weights, n, k, padding: { before: pad.before, after: use.k - src.k + pad.after, nAfter: use.n - n } };
}

/** One CPU shard, prepared through the registry (see chooseShard). */
export function prepareShard(src: LinearSource, bias: Float32Array | undefined, pad: InputPad = NO_PAD, opts: ShardPrepareOptions): ShardLinear {
  const c = chooseShard(src, bias, pad, opts);
  const inner = prepareLinear<Float32Array>(c.weights, { device: opts.device, maxRows: opts.maxRows, activation: "float16" });
  return new ShardLinear(inner, c.n, c.k, c.padding, opts.reduce);
}
