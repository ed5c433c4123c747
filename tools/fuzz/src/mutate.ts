/** Random values and mutations shared by the targets: edge numbers, odd JSON values, byte edits. */
import type { Rng } from "@marlin/core";

/** Numbers that break size arithmetic: signs, powers of two around int32/uint32/2^53, NaN, Inf. */
export const EDGE_NUMBERS: readonly number[] = [
  0, -0, -1, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4096, 65535, 65536,
  2 ** 24, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 48, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2,
  1e300, -1e300, -(2 ** 31), -(2 ** 53), 0.5, 1.5, -0.5, 1e-5, 1e-45, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
];

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(0, xs.length)];
}

export function chance(rng: Rng, p: number): boolean {
  return rng.next() < p;
}

export function edgeNumber(rng: Rng): number {
  return pick(rng, EDGE_NUMBERS);
}

/** A small non-negative integer most of the time, an edge number sometimes. */
export function dim(rng: Rng, typical: number, pEdge = 0.15): number {
  return chance(rng, pEdge) ? edgeNumber(rng) : rng.int(0, typical + 1);
}

const ODD_STRINGS = ["", " ", "\u0000", "__proto__", "constructor", "\ud800", "é", "💥", "a".repeat(300), "F16", "BF16", "I8", "1e5", "NaN", "-1", "null"];

/** A random JSON-representable value (or a number JSON cannot hold, which stringifies to null). */
export function oddValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth > 1 ? 5 : 8)) {
    case 0:
      return edgeNumber(rng);
    case 1:
      return pick(rng, ODD_STRINGS);
    case 2:
      return chance(rng, 0.5);
    case 3:
      return null;
    case 4:
      return rng.int(-3, 5000);
    case 5:
      return Array.from({ length: rng.int(0, 4) }, () => oddValue(rng, depth + 1));
    case 6:
      return Object.fromEntries(Array.from({ length: rng.int(0, 3) }, () => [pick(rng, ODD_STRINGS), oddValue(rng, depth + 1)]));
    default:
      return rng.int(0, 2) ? 2 ** rng.int(0, 60) : -(2 ** rng.int(0, 60));
  }
}

/** Every container path of `v` (objects and arrays), the root first. */
function containers(v: unknown, out: (Record<string, unknown> | unknown[])[] = []): (Record<string, unknown> | unknown[])[] {
  if (typeof v === "object" && v !== null) {
    out.push(v as Record<string, unknown>);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

/** A deep copy of `v` with 1..n random edits: values replaced, keys dropped or added, types changed. */
export function mutateJson(rng: Rng, v: unknown, edits = 1 + rng.int(0, 3)): unknown {
  const root = structuredClone(v);
  for (let e = 0; e < edits; e++) {
    const all = containers(root);
    if (all.length === 0) return oddValue(rng);
    const c = pick(rng, all);
    const keys = Object.keys(c);
    const op = rng.int(0, 6);
    if (Array.isArray(c)) {
      if (op === 0 && c.length) c.pop();
      else if (op === 1) c.push(oddValue(rng));
      else if (c.length) c[rng.int(0, c.length)] = oddValue(rng);
      continue;
    }
    if (op === 0 && keys.length) delete c[pick(rng, keys)];
    else if (op === 1) c[pick(rng, ODD_STRINGS)] = oddValue(rng);
    else if (op === 2 && keys.length) {
      const k = pick(rng, keys);
      const x = c[k];
      c[k] = typeof x === "number" ? (chance(rng, 0.5) ? edgeNumber(rng) : x * pick(rng, [-1, 2, 0.5, 1e6])) : oddValue(rng);
    } else if (keys.length) c[pick(rng, keys)] = oddValue(rng);
  }
  return root;
}

/**
 * JSON text of `v` with one key of one object written twice (the copy holding `dupValue`):
 * JSON.parse keeps the last, which is what a silently accepting reader would load.
 */
export function jsonWithDuplicateKey(rng: Rng, v: Record<string, unknown>, dupValue: (orig: unknown) => unknown): string {
  const objs = containers(v).filter((c) => !Array.isArray(c) && Object.keys(c).length > 0) as Record<string, unknown>[];
  const target = pick(rng, objs);
  const key = pick(rng, Object.keys(target));
  const write = (x: unknown): string => {
    if (typeof x !== "object" || x === null) return JSON.stringify(x) ?? "null";
    if (Array.isArray(x)) return `[${x.map(write).join(",")}]`;
    const parts = Object.entries(x).map(([k, y]) => `${JSON.stringify(k)}:${write(y)}`);
    if (x === target) parts.splice(rng.int(0, parts.length + 1), 0, `${JSON.stringify(key)}:${write(dupValue(target[key]))}`);
    return `{${parts.join(",")}}`;
  };
  return write(v);
}

/** Byte edits: flips, overwrites with 0x00/0xff, truncation, a run inserted. */
export function mutateBytes(rng: Rng, b: Uint8Array): Uint8Array {
  let out = b.slice();
  const edits = 1 + rng.int(0, 4);
  for (let e = 0; e < edits && out.length; e++) {
    const at = rng.int(0, out.length);
    switch (rng.int(0, 5)) {
      case 0:
        out[at] ^= 1 << rng.int(0, 8);
        break;
      case 1:
        out[at] = pick(rng, [0, 0xff, 0x22, 0x7b, 0x7d, 0x5c, 0x30, 0x39]);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3: {
        const run = new Uint8Array(rng.int(1, 64)).fill(pick(rng, [0, 0x20, 0x39, 0xff]));
        const grown = new Uint8Array(out.length + run.length);
        grown.set(out.subarray(0, at));
        grown.set(run, at);
        grown.set(out.subarray(at), at + run.length);
        out = grown;
        break;
      }
      default:
        out[at] = rng.int(0, 256);
    }
  }
  return out;
}

/** A random string: ASCII, multi-byte, lone surrogates, control characters, long runs. */
export function oddText(rng: Rng, maxLen = 200): string {
  const n = rng.int(0, maxLen);
  let s = "";
  for (let i = 0; i < n; i++) {
    const kind = rng.int(0, 10);
    if (kind < 5) s += String.fromCharCode(rng.int(32, 127));
    else if (kind < 7) s += String.fromCodePoint(rng.int(0x80, 0x3000));
    else if (kind === 7) s += String.fromCharCode(rng.int(0xd800, 0xe000)); // lone surrogates too
    else if (kind === 8) s += String.fromCodePoint(rng.int(0x1f300, 0x1fa00));
    else s += pick(rng, ["\n", "\t", "\u0000", " ", "  ", "\r\n", "<s>", "</s>"]);
  }
  if (chance(rng, 0.05)) s += pick(rng, [" ", "a", "\n"]).repeat(rng.int(100, 20000));
  return s;
}
