/**
 * What the GPU paths over Marlin-layout weights share (hopperMatmul, dequantMatmul): the checks of a
 * call, before anything is allocated or launched, and the addon's argument list, which follows
 * marlinGemm's: (x, xOffset, qweight, scales, zeros, perm, bias, out, outOffset, buffer, m, n, k,
 * groupSize, act, weight, stream).
 */
import { type ActivationDType, DTypeError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";
import { checkWeights, type DeviceMarlinWeights, weightKind } from "./marlin.js";
import { checkDim, checkDType, checkOperand, describe } from "./operand.js";
import type { Stream } from "./stream.js";

export interface DeviceQuantCall {
  x: DeviceBuffer;
  xByteOffset?: number;
  out: DeviceBuffer;
  outByteOffset?: number;
  m: number;
  weights: DeviceMarlinWeights;
  dtype?: ActivationDType;
  stream?: Stream;
}

/** Checks a call of `name`; `refuse` adds the path's own shape rule. Returns the activation dtype. */
export function checkDeviceQuantCall(name: string, args: DeviceQuantCall, refuse?: (w: DeviceMarlinWeights) => string | undefined): ActivationDType {
  if (!args || typeof args !== "object") throw new InvalidArgumentError(`${name} takes an argument object`);
  const { x, out, weights: w } = args;
  const dtype = args.dtype ?? "float16";
  checkDType(dtype);
  checkDim("m", args.m);
  if (!(x instanceof DeviceBuffer) || !(out instanceof DeviceBuffer))
    throw new DTypeError(`${name} runs on the GPU: x and out must be DeviceBuffers, got ${describe(x)} and ${describe(out)}`);
  checkWeights(w, true);
  const why = refuse?.(w);
  if (why) throw new ShapeError(why);
  checkOperand("x", x, args.m, w.k, args.xByteOffset ?? 0);
  checkOperand("out", out, args.m, w.n, args.outByteOffset ?? 0);
  return dtype;
}

/** The addon's arguments for a checked call, with `buffer` (workspace or scratch) in its slot. */
export function nativeQuantArgs(args: DeviceQuantCall, dtype: ActivationDType, buffer: DeviceBuffer): unknown[] {
  const w = args.weights;
  const h = (b: DeviceBuffer | undefined) => b?.handle ?? null;
  return [
    args.x.handle,
    args.xByteOffset ?? 0,
    h(w.qweight),
    h(w.scales),
    h(w.zeros),
    h(w.perm),
    h(w.bias),
    args.out.handle,
    args.outByteOffset ?? 0,
    buffer.handle,
    args.m,
    w.n,
    w.k,
    w.groupSize,
    dtype === "float16" ? 0 : 1,
    weightKind(w),
    args.stream?.handle,
  ];
}
