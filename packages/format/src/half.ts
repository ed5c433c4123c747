/**
 * fp16 and bf16 conversions (bit patterns held in Uint16Array). Round-to-nearest-even, with
 * NaN (payload kept, forced quiet when it would vanish), infinities, signed zeros and
 * subnormals handled exactly.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float32 (given as its bit pattern) to fp16 bits, round-to-nearest-even. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    // NaN: keep the top payload bits; set the quiet bit so the payload never becomes Inf.
    return sign | 0x7c00 | 0x200 | (mant >>> 13);
  }
  // Unbiased exponent e; half normal range is e in [-14, 15].
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal half: 10 mantissa bits, round the 13 dropped bits to nearest even.
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // may carry into exp: correct
    return sign | h;
  }
  if (e < -25) return sign; // below half the smallest subnormal (2^-25 rounds to 0 by even)
  // Subnormal half: value = m * 2^-24, m = full significand >> shift.
  const full = mant | 0x800000; // 24-bit significand, value = full * 2^(e-23)
  const shift = -e - 1; // = 23 - (e + 24) ... number of bits dropped: (e-23) - (-24) negated
  const m = full >>> shift;
  const rem = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  let h = m;
  if (rem > half || (rem === half && (m & 1) === 1)) h += 1;
  return sign | h;
}

/** fp16 bits to the float32 value (exact). */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** fp16 bits to float32 bits (NaN payload kept). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalize.
    let m = mant;
    let e = -14;
    while ((m & 0x400) === 0) {
      m <<= 1;
      e -= 1;
    }
    return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
}

/** Round half to even. */
export function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A number (float64) to fp16 bits, rounded once, to nearest even. */
export function numberToF16(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // 65520 is the tie between 65504 and 2^16: rounds to Inf
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24); // subnormal (1024 = smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  let m = roundEven(a * 2 ** (10 - e));
  if (m === 2048) {
    m = 1024;
    e += 1;
  }
  return sign | ((e + 15) << 10) | (m - 1024);
}

let f16Table: Float32Array | undefined;
/** All 65536 fp16 values as float32 (lazy, 256 KiB). */
function table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    const t = new Uint32Array(f16Table.buffer);
    for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

export function f32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

export function f16ToF32(h: Uint16Array): Float32Array {
  const t = table();
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = t[h[i]];
  return out;
}

/** One float32 (bit pattern) to bf16 bits, round-to-nearest-even. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    return ((x >>> 16) | 0x40) & 0xffff; // NaN: keep sign and top payload, force quiet
  }
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function f32ToBf16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32BitsToBf16(bits[i]);
  return out;
}

export function bf16ToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return out;
}

/** One bf16 value to a number. */
export function bf16BitsToNumber(h: number): number {
  u32[0] = (h << 16) >>> 0;
  return f32[0];
}

/** fp16 bits to a number via the lookup table (fast path for hot loops). */
export function f16Lookup(): Float32Array {
  return table();
}
