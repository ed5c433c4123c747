/**
 * A model's linear layers through the registry: q/k/v and gate/up fused along n, each fused layer
 * prepared once for a device with one implementation per m range (@marlin/core prepareLinear), so
 * a forward pass holds only prepared layers. The plans say which implementation serves which m.
 */
import { type DeviceTarget, type PlanRange, prepareLinear } from "@marlin/core";
import type { LayerLinears } from "./llama.js";
import { fuseLinears, type LayerSources, type LinearName, type LinearSource, toLinearWeights } from "./weights.js";

export const FUSED_LINEARS: Record<keyof LayerLinears<unknown>, LinearName[]> = {
  qkv: ["q_proj", "k_proj", "v_proj"],
  o: ["o_proj"],
  gateUp: ["gate_proj", "up_proj"],
  down: ["down_proj"],
};

export interface LinearPrepareOptions {
  device: DeviceTarget;
  /** Most rows one call takes. */
  maxRows: number;
  /** The stream calls run on (GPU). */
  stream?: unknown;
}

/** One linear (fused or not) prepared for the device. */
export function prepareSource<B, S>(src: LinearSource, bias: Float32Array | undefined, opts: LinearPrepareOptions) {
  return prepareLinear<B, S>(toLinearWeights(src, bias), { device: opts.device, maxRows: opts.maxRows, stream: opts.stream, activation: "float16" });
}

/** The four fused linears of a layer; what was prepared is disposed again if one fails. */
export function prepareLayerLinears<B, S>(layer: LayerSources, opts: LinearPrepareOptions): LayerLinears<B, S> {
  const done: Partial<LayerLinears<B, S>> = {};
  try {
    for (const [slot, names] of Object.entries(FUSED_LINEARS) as [keyof LayerLinears<B, S>, LinearName[]][]) {
      const { source, bias } = fuseLinears(names, layer.linears);
      done[slot] = prepareSource<B, S>(source, bias, opts);
    }
  } catch (e) {
    for (const l of Object.values(done)) l?.dispose();
    throw e;
  }
  return done as LayerLinears<B, S>;
}

export function disposeLinears(l: LayerLinears<unknown, unknown>): void {
  for (const x of [l.qkv, l.o, l.gateUp, l.down]) x.dispose();
}

/** "layer: implementation per m range" lines, one entry per fused linear of the first layer and lm_head. */
export function describePlans(entries: [string, readonly PlanRange[]][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, plan] of entries) out[name] = plan.map((r) => (plan.length === 1 ? r.id : `${r.id} (m ${r.from}..${r.to})`)).join(", ");
  return out;
}
