/**
 * Seeded random numbers for tests and benchmarks, so a failing run can be replayed: tests draw a
 * fresh seed each run (or take MARLIN_SEED) and print it.
 */
export class Rng {
  private s: number;
  readonly seed: number;
  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.s = this.seed || 0x9e3779b9;
  }
  /** mulberry32: uniform uint32. */
  nextU32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  fillNormal<T extends Float32Array | Float64Array>(out: T, scale = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal() * scale;
    return out;
  }
}

/** The seed for this run: MARLIN_SEED when set, else a fresh one. Callers print it. */
export function runSeed(): number {
  const env = typeof process !== "undefined" ? process.env.MARLIN_SEED : undefined;
  if (env !== undefined && env !== "") {
    const v = Number(env);
    if (Number.isInteger(v) && v >= 0) return v >>> 0;
  }
  return (Math.random() * 2 ** 32) >>> 0;
}
