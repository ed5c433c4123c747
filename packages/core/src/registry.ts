import { type DeviceTarget, describeDevice } from "./device.js";
import type { ActivationDType, MatmulShape, WeightType } from "./dtypes.js";
import { DuplicateImplementationError, InvalidArgumentError, NoKernelError } from "./errors.js";
import {
  type DispatchedLinear,
  type LinearWeights,
  type PlanRange,
  type PrepareLinearOptions,
  planLinearWith,
  prepareLinearWith,
} from "./linear.js";

/**
 * What a caller asks the registry for. `op` names the operation (e.g. "w4a16.matmul");
 * the other fields describe the problem; an op may leave out the ones it does not use.
 */
export interface KernelQuery {
  op: string;
  device: DeviceTarget;
  shape?: MatmulShape;
  weight?: WeightType;
  /** -1 for per-channel (one group spanning k). */
  groupSize?: number;
  actOrder?: boolean;
  activation?: ActivationDType;
  /** Anything else an op needs to decide (e.g. sparsity, bias). */
  extra?: Readonly<Record<string, unknown>>;
}

export type Fit = { ok: true } | { ok: false; reason: string };

export const FITS: Fit = Object.freeze({ ok: true });
export const refuse = (reason: string): Fit => ({ ok: false, reason });

/** Which devices an implementation can run on. */
export type DeviceRule =
  | { kind: "cpu" }
  | { kind: "cuda"; minCapability: number; maxCapability?: number };

export interface Implementation {
  /** Unique id, e.g. "marlin.cuda". Used to disable it through MARLIN_DISABLE. */
  id: string;
  op: string;
  /** Higher wins among implementations that fit. */
  priority: number;
  devices: DeviceRule;
  description?: string;
  /** Shape and type rules; the device rule is checked before this is called. */
  canImplement(query: KernelQuery): Fit;
}

export interface ExplainRow {
  id: string;
  priority: number;
  devices: string;
  ok: boolean;
  reason: string;
  selected: boolean;
}

export interface RegistryOptions {
  /** Ids to skip; defaults to the comma-separated MARLIN_DISABLE environment variable, read at each query. */
  disabled?: Iterable<string>;
}

export const DISABLE_ENV = "MARLIN_DISABLE";

function disabledFromEnv(): Set<string> {
  const raw = typeof process !== "undefined" ? process.env[DISABLE_ENV] : undefined;
  return new Set(
    (raw ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

function describeRule(r: DeviceRule): string {
  if (r.kind === "cpu") return "cpu";
  return r.maxCapability === undefined
    ? `cuda sm_${r.minCapability}+`
    : `cuda sm_${r.minCapability}..sm_${r.maxCapability}`;
}

const cc = (c: number) => (c / 10).toFixed(1);

function deviceFit(rule: DeviceRule, device: DeviceTarget): Fit {
  if (rule.kind === "cpu") return device.kind === "cpu" ? FITS : refuse("runs on the CPU only");
  if (device.kind !== "cuda") return refuse(`needs a CUDA device (${describeRule(rule)})`);
  if (device.capability < rule.minCapability)
    return refuse(`needs compute capability ${cc(rule.minCapability)} or newer, device has ${cc(device.capability)}`);
  if (rule.maxCapability !== undefined && device.capability > rule.maxCapability)
    return refuse(`supports compute capability up to ${cc(rule.maxCapability)}, device has ${cc(device.capability)}`);
  return FITS;
}

function describeQuery(q: KernelQuery): string {
  const parts = [q.op, `on ${describeDevice(q.device)}`];
  if (q.shape) parts.push(`m=${q.shape.m} n=${q.shape.n} k=${q.shape.k}`);
  if (q.weight) parts.push(`${q.weight.bits}-bit${q.weight.zeroPoints ? " with zero points" : ""}`);
  if (q.groupSize !== undefined) parts.push(`group ${q.groupSize}`);
  if (q.actOrder) parts.push("act-order");
  if (q.activation) parts.push(q.activation);
  return parts.join(" ");
}

/**
 * The dispatch registry: implementations of an op are offered a query in priority order; each is
 * skipped with a recorded reason when disabled, when the device does not fit its rule, or when its
 * own canImplement refuses. The first that fits is selected.
 */
export class Registry {
  private readonly impls = new Map<string, Implementation>();

  register(impl: Implementation): void {
    if (!impl || typeof impl.id !== "string" || !impl.id)
      throw new InvalidArgumentError("an implementation needs a non-empty string id");
    if (typeof impl.canImplement !== "function")
      throw new InvalidArgumentError(`implementation "${impl.id}" has no canImplement function`);
    if (!Number.isFinite(impl.priority))
      throw new InvalidArgumentError(`implementation "${impl.id}" has no finite priority`);
    if (this.impls.has(impl.id)) throw new DuplicateImplementationError(impl.id);
    this.impls.set(impl.id, impl);
  }

  unregister(id: string): boolean {
    return this.impls.delete(id);
  }

  has(id: string): boolean {
    return this.impls.has(id);
  }

  get(id: string): Implementation | undefined {
    return this.impls.get(id);
  }

  /** Implementations of one op (all ops when omitted), highest priority first, ties by id. */
  list(op?: string): Implementation[] {
    return [...this.impls.values()]
      .filter((i) => op === undefined || i.op === op)
      .sort((a, b) => b.priority - a.priority || a.id.localeCompare(b.id));
  }

  /** Every candidate for the query with its verdict; at most one row has selected = true. */
  explain(query: KernelQuery, options: RegistryOptions = {}): ExplainRow[] {
    const disabled = options.disabled ? new Set(options.disabled) : disabledFromEnv();
    let chosen = false;
    return this.list(query.op).map((impl) => {
      const fit = this.fit(impl, query, disabled);
      const selected = fit.ok && !chosen;
      if (selected) chosen = true;
      return {
        id: impl.id,
        priority: impl.priority,
        devices: describeRule(impl.devices),
        ok: fit.ok,
        reason: fit.ok ? (selected ? "selected" : "fits, lower priority") : fit.reason,
        selected,
      };
    });
  }

  /** The best fitting implementation; NoKernelError listing every candidate's reason when none fits. */
  select(query: KernelQuery, options: RegistryOptions = {}): Implementation {
    const rows = this.explain(query, options);
    const row = rows.find((r) => r.selected);
    if (!row)
      throw new NoKernelError(
        describeQuery(query),
        rows.map((r) => ({ id: r.id, reason: r.reason })),
      );
    return this.impls.get(row.id)!;
  }

  /** Which implementation serves which m range of a linear layer, and why the others did not. */
  planLinear(w: LinearWeights, opts: PrepareLinearOptions): PlanRange[] {
    return planLinearWith(this, w, opts);
  }

  /** The layer planned and prepared: forward(x, out, m, stream) runs the pick for m (see linear.ts). */
  prepareLinear<X = unknown, S = unknown>(w: LinearWeights, opts: PrepareLinearOptions): DispatchedLinear<X, S> {
    return prepareLinearWith<X, S>(this, w, opts);
  }

  private fit(impl: Implementation, query: KernelQuery, disabled: Set<string>): Fit {
    if (disabled.has(impl.id)) return refuse(`disabled by ${DISABLE_ENV}`);
    const dev = deviceFit(impl.devices, query.device);
    if (!dev.ok) return dev;
    try {
      return impl.canImplement(query);
    } catch (err) {
      return refuse(`canImplement threw: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}

/** A table of explain rows for the CLI and logs. */
export function formatExplain(rows: ExplainRow[]): string {
  if (!rows.length) return "(no implementation is registered for this op)";
  const header = ["", "id", "priority", "devices", "verdict"];
  const body = rows.map((r) => [r.selected ? "*" : "", r.id, String(r.priority), r.devices, r.reason]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [fmt(header), ...body.map(fmt)].join("\n");
}

// One registry per process, even when this module is loaded both as ESM and as CJS.
const KEY = Symbol.for("@marlin/core/registry");
type GlobalWithRegistry = typeof globalThis & { [KEY]?: Registry };
const g = globalThis as GlobalWithRegistry;
g[KEY] ??= new Registry();
export const registry: Registry = g[KEY];

export const register = (impl: Implementation): void => registry.register(impl);
export const select = (query: KernelQuery, options?: RegistryOptions): Implementation =>
  registry.select(query, options);
export const explain = (query: KernelQuery, options?: RegistryOptions): ExplainRow[] =>
  registry.explain(query, options);
export const planLinear = (w: LinearWeights, opts: PrepareLinearOptions): PlanRange[] => registry.planLinear(w, opts);
export const prepareLinear = <X = unknown, S = unknown>(w: LinearWeights, opts: PrepareLinearOptions): DispatchedLinear<X, S> =>
  registry.prepareLinear<X, S>(w, opts);
