/**
 * Linear layers through the registry: what an implementation of a matmul op must provide to run,
 * and prepareLinear(), which picks one implementation per range of rows (m) for a layer once, prepares
 * its weights once, and hands back a layer whose forward() runs the pick for the call's m with no
 * registry lookup.
 *
 * The ops: "dense.matmul" (fp16/fp32 weights), "quant.matmul" (4/8-bit weights with group scales),
 * and, for any other weight kind K, "K.matmul" (e.g. "sparse24.matmul"). Each implementation runs on
 * the host (CPU rule: x and out are Float32Array [m, k] / [m, n], fp32) or on a CUDA device (x and out
 * are device buffers of the activation dtype, fp16 or bf16, queued on the given stream).
 */
import type { DeviceTarget } from "./device.js";
import { describeDevice } from "./device.js";
import type { ActivationDType } from "./dtypes.js";
import { InvalidArgumentError, MarlinError, NoKernelError } from "./errors.js";
import type { Implementation, KernelQuery, Registry, RegistryOptions } from "./registry.js";

/** A quantized weight as @marlin/format's QuantizedLayer holds it (W stored as [k, n]). */
export interface QuantizedWeights {
  k: number;
  n: number;
  bits: 4 | 8;
  /** -1: one group over all of k. */
  groupSize: number;
  symmetric: boolean;
  /** [k*n] row-major [k, n], values in [0, 2^bits). */
  q: Uint8Array;
  /** fp16 bits [groups, n]. */
  scales: Uint16Array;
  /** Raw zero points [groups, n]; present iff !symmetric. */
  zeros?: Uint8Array;
  /** Act-order: the group of each input row [k]. */
  gIdx?: Int32Array;
}

/** Host weights of y = x W^T + b with W [n (out), k (in)], before an implementation prepares them. */
export type LinearWeights = DenseLinearWeights | QuantizedLinearWeights | OtherLinearWeights;

interface LinearWeightsBase {
  n: number;
  k: number;
  /** fp32 [n] */
  bias?: Float32Array;
  /** For messages and explain (e.g. "layers.3.qkv"). */
  name?: string;
  /**
   * The weights already in some implementation's own layout, possibly on a device (a Marlin
   * checkpoint's packed tensors, or weights made on the GPU): `format` names the layout, and only
   * implementations that read it accept the layer (e.g. "marlin", "marlin-device", "fp16-device").
   */
  placed?: PlacedWeights;
}
export interface PlacedWeights {
  format: string;
  data: unknown;
}
export interface DenseLinearWeights extends LinearWeightsBase {
  kind: "dense";
  /** W [n, k]: fp32 values, or fp16 bits (absent when `placed` holds them). */
  data?: Float32Array | Uint16Array;
}
export interface QuantizedLinearWeights extends LinearWeightsBase {
  kind: "quantized";
  bits: 4 | 8;
  /** -1: one group over all of k. */
  groupSize: number;
  symmetric: boolean;
  actOrder: boolean;
  /** The values unpacked (absent when `placed` holds them). */
  layer?: QuantizedWeights;
}
/** Weight kinds other packages define (e.g. "sparse24"): served by the op `${kind}.matmul`. */
export interface OtherLinearWeights extends LinearWeightsBase {
  kind: string;
  [field: string]: unknown;
}

/** Quantized linear weights of an unpacked layer (its facts copied to the top level). */
export function quantizedWeights(layer: QuantizedWeights, extra: { bias?: Float32Array; name?: string } = {}): QuantizedLinearWeights {
  return { kind: "quantized", n: layer.n, k: layer.k, bits: layer.bits, groupSize: layer.groupSize, symmetric: layer.symmetric, actOrder: !!layer.gIdx, layer, ...extra };
}

/**
 * What the engine needs of a weight kind beyond running it: fusing layers that share an input
 * (q/k/v, gate/up) along n, and dense values (when fused with layers of another kind). "dense" and
 * "quantized" are built into the engine; other kinds register theirs (e.g. @marlin/sparse).
 */
export interface WeightKindHooks {
  /** The parts concatenated along n (same k, same kind). */
  concat?(parts: LinearWeights[], name: string): LinearWeights;
  /** W [n, k] as fp32 values. */
  toDense?(w: LinearWeights): Float32Array;
  /**
   * Tensor parallelism: the rows [start, end) of W along `axis` ("n": output features, "k": input
   * features) as a layer of its own. Without it, a shard of this kind is served dense.
   */
  slice?(w: LinearWeights, axis: "n" | "k", start: number, end: number): LinearWeights;
}

const KIND_KEY = Symbol.for("@marlin/core/weight-kinds");
const kindGlobal = globalThis as Record<symbol, Map<string, WeightKindHooks> | undefined>;
kindGlobal[KIND_KEY] ??= new Map();
const kindTable: Map<string, WeightKindHooks> = kindGlobal[KIND_KEY];

export function registerWeightKind(kind: string, hooks: WeightKindHooks): void {
  if (kind === "dense" || kind === "quantized") throw new InvalidArgumentError(`weight kind "${kind}" is built in`);
  kindTable.set(kind, hooks);
}

export function weightKindHooks(kind: string): WeightKindHooks | undefined {
  return kindTable.get(kind);
}

/** The op that serves a weight kind. */
export function linearOp(kind: string): string {
  return kind === "dense" ? "dense.matmul" : kind === "quantized" ? "quant.matmul" : `${kind}.matmul`;
}

/** Facts an implementation may describe its weights with in a query (beyond n and k). */
export interface LinearDescription {
  weight?: KernelQuery["weight"];
  groupSize?: number;
  actOrder?: boolean;
  extra?: Readonly<Record<string, unknown>>;
}

function describeWeights(w: LinearWeights): LinearDescription {
  const extra: Record<string, unknown> = { bias: !!w.bias };
  if (w.placed) extra.placed = w.placed.format;
  if (w.kind === "quantized") {
    const q = w as QuantizedLinearWeights;
    return { weight: { bits: q.bits, zeroPoints: !q.symmetric }, groupSize: q.groupSize, actOrder: q.actOrder, extra };
  }
  if (w.kind !== "dense") for (const [key, v] of Object.entries(w)) if (v !== undefined && typeof v !== "object" && typeof v !== "function") extra[key] = v;
  return { extra };
}

/** The `placed` format a query's weights come in (undefined: host values). */
export function placedFormat(q: KernelQuery): string | undefined {
  const f = q.extra?.placed;
  return typeof f === "string" ? f : undefined;
}

/** The registry query for a layer at m rows. */
export function linearQuery(w: LinearWeights, m: number, device: DeviceTarget, activation: ActivationDType = "float16"): KernelQuery {
  return { op: linearOp(w.kind), device, shape: { m, n: w.n, k: w.k }, activation, ...describeWeights(w) };
}

/**
 * What prepare() gets besides the weights. `shared` is one per layer: implementations serving
 * different m ranges of the same layer can keep one copy of weights they both read there (by a key
 * naming the format, e.g. "marlin-device"), with a dispose that runs once, after every prepared
 * implementation of the layer was disposed.
 */
export interface PrepareContext {
  device: DeviceTarget;
  activation: ActivationDType;
  /** Most rows one call will take (sizes workspaces). */
  maxRows: number;
  /** The smallest and largest m this preparation serves. */
  mRange: readonly [number, number];
  /** The stream calls will run on (GPU), so per-stream scratch can be sized before any graph capture. */
  stream?: unknown;
  shared: SharedResources;
}

export class SharedResources {
  private readonly items = new Map<string, { value: unknown; dispose?: () => void }>();
  /** The value under `key`, made (once) by `make`. */
  get<T>(key: string, make: () => { value: T; dispose?: () => void }): T {
    let item = this.items.get(key);
    if (!item) {
      item = make();
      this.items.set(key, item);
    }
    return item.value as T;
  }
  dispose(): void {
    const items = [...this.items.values()].reverse();
    this.items.clear();
    for (const it of items) it.dispose?.();
  }
}

/** A layer's weights as one implementation runs them. */
export interface PreparedLinear<X = unknown, S = unknown> {
  readonly n: number;
  readonly k: number;
  /** Bytes of weights one call streams (the bandwidth floor). */
  readonly weightBytes: number;
  /** out[m, n] = x[m, k] W^T (+ b). CPU: Float32Array; CUDA: device buffers of the activation dtype. */
  apply(x: X, out: X, m: number, stream?: S): void;
  /** Frees what prepare() allocated for this implementation alone (not `shared`). */
  dispose(): void;
}

/** An implementation of a linear op: the registry entry, plus how it prepares a layer to run. */
export interface LinearImplementation<X = unknown, S = unknown> extends Implementation {
  prepare(weights: LinearWeights, ctx: PrepareContext): PreparedLinear<X, S>;
}

export function isLinearImplementation(impl: Implementation): impl is LinearImplementation {
  return typeof (impl as Partial<LinearImplementation>).prepare === "function";
}

/** An implementation threw while preparing a layer (nothing of the layer stays allocated). */
export class PrepareError extends MarlinError {
  readonly implementation: string;
  constructor(id: string, what: string, cause: unknown) {
    super("ERR_MARLIN_PREPARE", `implementation "${id}" failed to prepare ${what}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.implementation = id;
  }
}

/** Row buckets a layer is planned over: each bucket's largest m is what the registry is asked. */
export const M_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** One m range of a layer's plan. */
export interface PlanRange {
  /** Rows [from, to] (inclusive). */
  from: number;
  to: number;
  id: string;
  /** The other candidates for this range and why they were not picked ("id: reason"). */
  others: string[];
}

export interface PrepareLinearOptions {
  device: DeviceTarget;
  activation?: ActivationDType;
  /** Most rows a call will take (default 1): the plan covers m in [1, maxRows]. */
  maxRows?: number;
  /** The stream calls will run on (see PrepareContext). */
  stream?: unknown;
  disabled?: RegistryOptions["disabled"];
}

/**
 * A linear layer ready to run: one prepared implementation per m range, chosen once. forward()
 * compares m against the ranges (a handful of integers) and calls the pick: no registry lookups.
 */
export class DispatchedLinear<X = unknown, S = unknown> {
  readonly n: number;
  readonly k: number;
  readonly name: string;
  readonly plan: readonly PlanRange[];
  private readonly uppers: number[];
  private readonly runs: PreparedLinear<X, S>[];
  private readonly shared: SharedResources;
  private disposed = false;

  constructor(n: number, k: number, name: string, plan: PlanRange[], runs: PreparedLinear<X, S>[], shared: SharedResources) {
    this.n = n;
    this.k = k;
    this.name = name;
    this.plan = plan;
    this.uppers = plan.map((r) => r.to);
    this.runs = runs;
    this.shared = shared;
  }

  /** The maximum rows the plan covers. */
  get maxRows(): number {
    return this.uppers[this.uppers.length - 1];
  }

  /** The implementation serving m rows. */
  implementationFor(m: number): string {
    return this.plan[this.index(m)].id;
  }

  /** Weight bytes streamed per call at m rows. */
  weightBytes(m = 1): number {
    return this.runs[this.index(m)].weightBytes;
  }

  /** out[m, n] = x[m, k] W^T (+ b); m = 0 does nothing. */
  forward(x: X, out: X, m: number, stream?: S): void {
    if (this.disposed) throw new InvalidArgumentError(`linear layer ${this.name} was disposed`);
    if (m === 0) return;
    this.runs[this.index(m)].apply(x, out, m, stream);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const r of new Set(this.runs)) r.dispose();
    this.shared.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private index(m: number): number {
    const u = this.uppers;
    if (Number.isInteger(m) && m >= 1) for (let i = 0; i < u.length; i++) if (m <= u[i]) return i;
    return this.badRows(m);
  }

  private badRows(m: number): never {
    throw new InvalidArgumentError(`linear layer ${this.name}: m = ${m} is outside the prepared range [0, ${this.maxRows}]`);
  }
}

/** The plan for a layer: for each bucket up to maxRows, the registry's pick, adjacent equal picks merged. */
export function planLinearWith(reg: Registry, w: LinearWeights, opts: PrepareLinearOptions): PlanRange[] {
  const maxRows = opts.maxRows ?? 1;
  if (!Number.isSafeInteger(maxRows) || maxRows < 1) throw new InvalidArgumentError(`maxRows must be a positive integer, got ${maxRows}`);
  const edges = M_BUCKETS.filter((b) => b < maxRows).concat(maxRows);
  const plan: PlanRange[] = [];
  let from = 1;
  for (const to of edges) {
    const q = linearQuery(w, to, opts.device, opts.activation);
    const rows = reg.explain(q, { disabled: opts.disabled });
    const pick = rows.find((r) => r.selected);
    if (!pick)
      throw new NoKernelError(
        `${w.name ?? "a linear layer"}: ${q.op} m=${from}..${to} n=${w.n} k=${w.k} on ${describeDevice(opts.device)}`,
        rows.map((r) => ({ id: r.id, reason: r.reason })),
      );
    const others = rows.filter((r) => !r.selected).map((r) => `${r.id}: ${r.reason}`);
    const last = plan[plan.length - 1];
    if (last && last.id === pick.id) {
      last.to = to;
      for (const o of others) if (!last.others.includes(o)) last.others.push(o);
    } else plan.push({ from, to, id: pick.id, others });
    from = to + 1;
  }
  return plan;
}

/**
 * Plans and prepares a layer. An implementation that throws while preparing is reported as a
 * PrepareError naming it, after everything already prepared for the layer was disposed.
 */
export function prepareLinearWith<X = unknown, S = unknown>(reg: Registry, w: LinearWeights, opts: PrepareLinearOptions): DispatchedLinear<X, S> {
  const plan = planLinearWith(reg, w, opts);
  const shared = new SharedResources();
  const byId = new Map<string, PreparedLinear<X, S>>();
  const runs: PreparedLinear<X, S>[] = [];
  const name = w.name ?? `linear ${w.n}x${w.k}`;
  try {
    for (const r of plan) {
      let run = byId.get(r.id);
      if (!run) {
        const impl = reg.get(r.id);
        if (!impl || !isLinearImplementation(impl)) throw new PrepareError(r.id, name, new Error("it has no prepare() (not a linear implementation)"));
        try {
          run = impl.prepare(w, {
            device: opts.device,
            activation: opts.activation ?? "float16",
            maxRows: opts.maxRows ?? 1,
            mRange: [r.from, r.to],
            stream: opts.stream,
            shared,
          }) as PreparedLinear<X, S>;
        } catch (e) {
          throw e instanceof PrepareError ? e : new PrepareError(r.id, name, e);
        }
        byId.set(r.id, run);
      }
      runs.push(run);
    }
  } catch (e) {
    for (const run of byId.values()) {
      try {
        run.dispose();
      } catch {
        // the original failure is what the caller needs to see
      }
    }
    shared.dispose();
    throw e;
  }
  return new DispatchedLinear<X, S>(w.n, w.k, name, plan, runs, shared);
}

/**
 * A fallback's prepare: the layer's dense form served by what the registry picks for dense weights
 * on the same device (e.g. a kind dequantized once on the host), behind this implementation.
 */
export function prepareAsDense(reg: Registry, dense: DenseLinearWeights, ctx: PrepareContext): PreparedLinear {
  const inner = reg.prepareLinear(dense, { device: ctx.device, activation: ctx.activation, maxRows: ctx.maxRows, stream: ctx.stream });
  return {
    n: dense.n,
    k: dense.k,
    weightBytes: inner.weightBytes(),
    apply: (x, out, m, stream) => inner.forward(x, out, m, stream),
    dispose: () => inner.dispose(),
  };
}

/** A plan as text: which implementation serves which m, and why the others did not. */
export function formatPlan(plan: readonly PlanRange[]): string {
  return plan
    .map((r) => {
      const head = `m ${r.from}${r.to !== r.from ? `..${r.to}` : ""}: ${r.id}`;
      return r.others.length ? `${head}\n${r.others.map((s) => `    not ${s}`).join("\n")}` : head;
    })
    .join("\n");
}
