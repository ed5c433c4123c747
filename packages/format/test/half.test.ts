import { Rng, runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import {
  bf16BitsToNumber,
  bf16ToF32,
  f16BitsToNumber,
  f16ToF32,
  f32BitsToF16,
  f32ToBf16,
  f32ToF16,
  numberToF16,
} from "../src/index.js";

const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
const isNaN16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number) => {
  f32[0] = x;
  return u32[0];
};

/** Nearest-even fp16 by brute force over the sorted finite positive halves (f64 arithmetic). */
const positives = Array.from({ length: 0x7c00 }, (_, h) => f16BitsToNumber(h)); // 0 .. 65504
function refF16(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = positives.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positives[mid] <= a) lo = mid;
    else hi = mid;
  }
  if (a >= positives[hi]) return sign | hi;
  const dl = a - positives[lo];
  const dh = positives[hi] - a;
  if (dl < dh) return sign | lo;
  if (dh < dl) return sign | hi;
  return sign | (lo % 2 === 0 ? lo : hi);
}

describe("fp16", () => {
  it("round-trips all 65536 half values (NaNs stay NaN, payload kept and quiet)", () => {
    const back = f32ToF16(f16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      if (isNaN16(h)) {
        expect(isNaN16(back[h])).toBe(true);
        expect(back[h]).toBe(h | 0x200);
      } else if (back[h] !== h) {
        expect.fail(`half 0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
      }
    }
  });

  it("f16ToF32 agrees with the exact value of every half", () => {
    const f = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const want = f16BitsToNumber(h);
      if (Number.isNaN(want)) expect(Number.isNaN(f[h])).toBe(true);
      else if (!Object.is(f[h], want)) expect.fail(`half 0x${h.toString(16)}: ${f[h]} != ${want}`);
    }
  });

  it("rounds every midpoint between adjacent halves to even, and its neighbours to nearest", () => {
    for (let h = 0; h < 0x7bff; h++) {
      const a = f16BitsToNumber(h);
      const b = f16BitsToNumber(h + 1);
      const mid = (a + b) / 2; // exact in f32: halves have 11 significant bits
      const mb = bitsOf(mid);
      const even = h % 2 === 0 ? h : h + 1;
      for (const sign of [0, 0x80000000]) {
        const s16 = sign ? 0x8000 : 0;
        if (f32BitsToF16((mb | sign) >>> 0) !== (s16 | even)) expect.fail(`midpoint after 0x${h.toString(16)}`);
        if (f32BitsToF16(((mb - 1) | sign) >>> 0) !== (s16 | h)) expect.fail(`below midpoint 0x${h.toString(16)}`);
        if (f32BitsToF16(((mb + 1) | sign) >>> 0) !== (s16 | (h + 1))) expect.fail(`above midpoint 0x${h.toString(16)}`);
      }
    }
  });

  it("handles overflow, infinities, NaN, signed zero and underflow", () => {
    const c = (x: number) => f32ToF16(Float32Array.of(x))[0];
    expect(c(65504)).toBe(0x7bff);
    expect(c(65519.99)).toBe(0x7bff);
    expect(c(65520)).toBe(0x7c00);
    expect(c(1e10)).toBe(0x7c00);
    expect(c(-1e10)).toBe(0xfc00);
    expect(c(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(c(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(isNaN16(c(Number.NaN))).toBe(true);
    expect(c(-0)).toBe(0x8000);
    expect(c(2 ** -24)).toBe(1);
    expect(c(2 ** -25)).toBe(0); // tie with 0 and 1: even
    expect(c(2 ** -25 * 1.0001)).toBe(1);
    expect(c(3 * 2 ** -25)).toBe(2); // tie between 1 and 2: even
    expect(c(2 ** -26)).toBe(0);
    expect(c(1e-30)).toBe(0);
    expect(c(2 ** -14)).toBe(0x0400);
    expect(c(1)).toBe(0x3c00);
    expect(c(-2)).toBe(0xc000);
  });

  it("matches a brute-force nearest-even reference on random inputs (f32 bits and f64 numbers)", () => {
    const seed = runSeed();
    console.log(`half seed ${seed}`);
    const rng = new Rng(seed);
    for (let i = 0; i < 200_000; i++) {
      const bits = rng.nextU32();
      f32[0] = 0;
      u32[0] = bits;
      const v = f32[0];
      if (Number.isNaN(v)) continue;
      const got = f32BitsToF16(bits);
      if (got !== refF16(v)) expect.fail(`f32 bits 0x${bits.toString(16)} (${v}): 0x${got.toString(16)}`);
    }
    for (let i = 0; i < 100_000; i++) {
      const v = (rng.next() - 0.5) * 2 ** rng.int(-30, 18);
      const got = numberToF16(v);
      if (got !== refF16(v)) expect.fail(`number ${v}: 0x${got.toString(16)} want 0x${refF16(v).toString(16)}`);
    }
  });
});

describe("bf16", () => {
  it("round-trips all 65536 bf16 values", () => {
    const back = f32ToBf16(bf16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      const nan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (nan) expect(back[h]).toBe(h | 0x40);
      else if (back[h] !== h) expect.fail(`bf16 0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
    }
  });

  it("rounds to nearest even, including at midpoints, overflow and subnormals", () => {
    for (let h = 0; h < 0x7f7f; h++) {
      const lo = (h << 16) >>> 0;
      const mid = (lo + 0x8000) >>> 0;
      const even = h % 2 === 0 ? h : h + 1;
      const r = f32ToBf16(new Float32Array(new Uint32Array([mid, mid - 1, mid + 1]).buffer));
      if (r[0] !== even || r[1] !== h || r[2] !== h + 1) expect.fail(`bf16 rounding near 0x${h.toString(16)}`);
    }
    const c = (x: number) => f32ToBf16(Float32Array.of(x))[0];
    expect(c(3.3895313892515355e38)).toBe(0x7f7f); // max finite bf16
    expect(c(3.4028234663852886e38)).toBe(0x7f80); // max f32 rounds up to Inf
    expect(c(Number.NEGATIVE_INFINITY)).toBe(0xff80);
    expect(c(-0)).toBe(0x8000);
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(Number.isNaN(bf16BitsToNumber(c(Number.NaN)))).toBe(true);
  });
});
