/**
 * fp16 rounding in float64. Group scales are stored as fp16, so GPTQ rounds each scale to fp16
 * before it quantizes with it: the error feedback then sees exactly the values the kernel will use.
 * Bit conversions are @marlin/format's; this file adds the value-level helpers the search needs.
 */
import { f16BitsToNumber, numberToF16 } from "@marlin/format";

export const F16_MAX = 65504;
/** Smallest positive (subnormal) fp16. */
export const F16_MIN_POSITIVE = 2 ** -24;

/** Round half to even (what rintf and torch.round do). */
export function rint(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The fp16 value nearest to x (ties to even), as a number; overflow gives +-Infinity. */
export function roundToF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return f16BitsToNumber(numberToF16(x));
}
