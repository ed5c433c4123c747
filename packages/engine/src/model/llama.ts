/**
 * The Llama decoder, written once. Every device runs these functions over its own ops (CPU: fp32
 * host arrays; GPU: fp16 device buffers), and the GPTQ passes run them with hooks that see each
 * linear layer's input:
 *
 *   x = norm1(h)                       (or, after the previous layer: h += x; x = norm1(h))
 *   qkv = x Wqkv;  rope(q, k);  store k, v;  attn = attention(q, cache)
 *   x = attn Wo;   h += x;  x = norm2(h)
 *   gu = x Wgu;    act = silu(gate) * up;  x = act Wdown      (h + x is the layer's output)
 *
 * The residual add of a layer's output is left to the next layer's norm (one fused op), and to the
 * final norm after the last layer.
 */
import type { DispatchedLinear } from "@marlin/core";
import type { LinearName } from "./weights.js";

/** The four linear layers of a decoder layer, q/k/v and gate/up fused along n. */
export interface LayerLinears<B, S = unknown> {
  qkv: DispatchedLinear<B, S>;
  o: DispatchedLinear<B, S>;
  gateUp: DispatchedLinear<B, S>;
  down: DispatchedLinear<B, S>;
}

export interface LayerParams<B, S = unknown> extends LayerLinears<B, S> {
  inputNorm: B;
  postNorm: B;
}

/** Per-op primitives of a decoder layer; each op reads and writes `rows` rows of its buffers. */
export interface LayerOps<B, S = unknown> {
  /** out = rmsnorm(x) * w */
  rmsnorm(x: B, w: B, out: B, rows: number): void;
  /** h += x; x = rmsnorm(h) * w */
  addRmsnorm(h: B, x: B, w: B, rows: number): void;
  /** RoPE on the q and k heads of qkv, then k and v stored in layer `layer`'s cache at the rows' slots. */
  ropeStoreKv(qkv: B, rows: number, layer: number): void;
  /** Each row's q heads attend over its sequence's cached k/v up to its own position. */
  attention(qkv: B, out: B, rows: number, layer: number): void;
  /** out = silu(gu[:, :I]) * gu[:, I:] */
  siluMul(gu: B, out: B, rows: number): void;
  /** out = x W^T (+ b) through the layer's prepared implementation for `rows`. */
  linear(l: DispatchedLinear<B, S>, x: B, out: B, rows: number): void;
}

/** Scratch rows of one pass: h (residual stream), x (normed input / pending delta), and the rest. */
export interface LayerBuffers<B> {
  h: B;
  x: B;
  qkv: B;
  attn: B;
  gu: B;
  act: B;
}

/** Which linear layers' inputs a hook sees at each point (fused layers share an input). */
export const LINEAR_INPUTS = {
  qkv: ["q_proj", "k_proj", "v_proj"],
  o: ["o_proj"],
  gateUp: ["gate_proj", "up_proj"],
  down: ["down_proj"],
} as const satisfies Record<keyof LayerLinears<unknown>, readonly LinearName[]>;

/** Sees the input rows of each linear layer (GPTQ's Hessians); `x` holds `rows` rows of width k. */
export type LinearInputHook<B> = (names: readonly LinearName[], x: B, rows: number) => void;

/** The points a pass can stop at: after showing this linear's input (0 qkv, 1 o, 2 gate/up, 3 down). */
export const STOP_STEP: Record<LinearName, number> = { q_proj: 0, k_proj: 0, v_proj: 0, o_proj: 1, gate_proj: 2, up_proj: 2, down_proj: 3 };

export interface LayerPass<B> {
  /** true: h is the layer's input and x holds nothing (first layer, or a GPTQ pass); else h + x is. */
  fresh: boolean;
  hook?: LinearInputHook<B>;
  /** Ends the pass once this step's linear input was shown (see STOP_STEP). */
  stopAt?: number;
}

/** Attention half: norm1, q/k/v, RoPE + KV store, attention into buf.attn. Returns false if stopped. */
export function attentionBlock<B, S>(ops: LayerOps<B, S>, p: LayerParams<B, S>, li: number, buf: LayerBuffers<B>, rows: number, pass: LayerPass<B>): boolean {
  if (pass.fresh) ops.rmsnorm(buf.h, p.inputNorm, buf.x, rows);
  else ops.addRmsnorm(buf.h, buf.x, p.inputNorm, rows);
  pass.hook?.(LINEAR_INPUTS.qkv, buf.x, rows);
  if (pass.stopAt === 0) return false;
  ops.linear(p.qkv, buf.x, buf.qkv, rows);
  ops.ropeStoreKv(buf.qkv, rows, li);
  ops.attention(buf.qkv, buf.attn, rows, li);
  return true;
}

/** o_proj and the residual: h += attn Wo; x = norm2(h). Returns false if stopped. */
export function attentionOutput<B, S>(ops: LayerOps<B, S>, p: LayerParams<B, S>, buf: LayerBuffers<B>, rows: number, pass: LayerPass<B>): boolean {
  pass.hook?.(LINEAR_INPUTS.o, buf.attn, rows);
  if (pass.stopAt === 1) return false;
  ops.linear(p.o, buf.attn, buf.x, rows);
  ops.addRmsnorm(buf.h, buf.x, p.postNorm, rows);
  return true;
}

/** MLP on the normed x: x = down(silu(gate) * up). Returns false if stopped. */
export function mlpBlock<B, S>(ops: LayerOps<B, S>, p: LayerParams<B, S>, buf: LayerBuffers<B>, rows: number, pass: LayerPass<B>): boolean {
  pass.hook?.(LINEAR_INPUTS.gateUp, buf.x, rows);
  if (pass.stopAt === 2) return false;
  ops.linear(p.gateUp, buf.x, buf.gu, rows);
  ops.siluMul(buf.gu, buf.act, rows);
  pass.hook?.(LINEAR_INPUTS.down, buf.act, rows);
  if (pass.stopAt === 3) return false;
  ops.linear(p.down, buf.act, buf.x, rows);
  return true;
}

/** One decoder layer; afterwards h + x is its output. Returns false if the pass stopped early. */
export function decoderLayer<B, S>(ops: LayerOps<B, S>, p: LayerParams<B, S>, li: number, buf: LayerBuffers<B>, rows: number, pass: LayerPass<B>): boolean {
  return attentionBlock(ops, p, li, buf, rows, pass) && attentionOutput(ops, p, buf, rows, pass) && mlpBlock(ops, p, buf, rows, pass);
}

/** Every layer, then the final norm: x holds the normed last hidden state of each row. */
export function decoderStack<B, S>(ops: LayerOps<B, S>, layers: readonly LayerParams<B, S>[], finalNorm: B, buf: LayerBuffers<B>, rows: number): void {
  for (let i = 0; i < layers.length; i++) decoderLayer(ops, layers[i], i, buf, rows, { fresh: i === 0 });
  ops.addRmsnorm(buf.h, buf.x, finalNorm, rows);
}
