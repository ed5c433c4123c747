import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AlignmentError, InvalidArgumentError, Rng, runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import {
  type Bits,
  dequantize,
  type MarlinLayer,
  numGroups,
  packMarlin,
  type QuantizedLayer,
  SCALE_PERM,
  SCALE_PERM_SINGLE,
  unpackMarlin,
  weightPerm,
} from "../src/index.js";
import { expectSame, randomLayer } from "./helpers.js";

const seed = runSeed();
console.log(`marlin seed ${seed}`);

// ---------------------------------------------------------------------------------------------
// A slow, literal re-statement of the published packing steps, written separately from the fast
// packer: (1) cut [k, n] into 16x16 tiles and lay each tile row-major, tile after tile, giving a
// [k/16, 16n] matrix; (2) in every run of 1024 entries (four tiles), reorder by the lane table;
// (3) pack each run of 32/bits entries into a word, first entry in the lowest bits.

function slowLaneTable(interleave: number[]): number[] {
  const table: number[] = [];
  for (let lane = 0; lane < 32; lane++) {
    const mine: number[] = [];
    const column = Math.floor(lane / 4);
    for (const block of [0, 1]) {
      const rows = [2 * (lane % 4), 2 * (lane % 4) + 1, 2 * ((lane % 4) + 4), 2 * ((lane % 4) + 4) + 1];
      for (const row of rows) mine.push(16 * row + column + 8 * block);
    }
    for (let tile = 0; tile < 4; tile++) for (const m of mine) table.push(m + 256 * tile);
  }
  const out: number[] = [];
  for (let start = 0; start < table.length; start += interleave.length) {
    for (const i of interleave) out.push(table[start + i]);
  }
  return out;
}

function slowPackWeights(q: Uint8Array, k: number, n: number, bits: Bits): Int32Array {
  const tiled: number[][] = [];
  for (let tr = 0; tr < k / 16; tr++) {
    const row: number[] = [];
    for (let tc = 0; tc < n / 16; tc++) {
      for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) row.push(q[(tr * 16 + i) * n + tc * 16 + j]);
    }
    tiled.push(row);
  }
  const table = slowLaneTable(bits === 4 ? [0, 2, 4, 6, 1, 3, 5, 7] : [0, 2, 1, 3]);
  const per = 32 / bits;
  const words: number[] = [];
  for (const row of tiled) {
    const shuffled: number[] = [];
    for (let c = 0; c < row.length; c += 1024) for (let e = 0; e < 1024; e++) shuffled.push(row[c + table[e]]);
    for (let w = 0; w < shuffled.length; w += per) {
      let word = 0;
      for (let i = 0; i < per; i++) word += shuffled[w + i] * 2 ** (bits * i);
      words.push(word);
    }
  }
  return Int32Array.from(words, (w) => w | 0);
}

function slowPermuteScales(s: Uint16Array, k: number, groupSize: number): Uint16Array {
  const perm: number[] = [];
  if (groupSize !== -1 && groupSize < k) {
    for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) perm.push(i + 8 * j);
  } else {
    for (let i = 0; i < 4; i++) for (const j of [0, 1, 8, 9, 16, 17, 24, 25]) perm.push(2 * i + j);
  }
  const out = new Uint16Array(s.length);
  for (let b = 0; b < s.length; b += perm.length) for (let i = 0; i < perm.length; i++) out[b + i] = s[b + perm[i]];
  return out;
}

function slowPackZeros(z: Uint8Array, n: number, bits: Bits): Int32Array {
  const perm: number[] = [];
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) perm.push(i + 8 * j);
  const permuted: number[] = [];
  for (let b = 0; b < z.length; b += 64) for (let i = 0; i < 64; i++) permuted.push(z[b + perm[i]]);
  const il = bits === 4 ? [0, 2, 4, 6, 1, 3, 5, 7] : [0, 2, 1, 3];
  const inter: number[] = [];
  for (let b = 0; b < permuted.length; b += il.length) for (const i of il) inter.push(permuted[b + i]);
  const per = 32 / bits;
  const out: number[] = [];
  for (let w = 0; w < inter.length; w += per) {
    let word = 0;
    for (let i = 0; i < per; i++) word += inter[w + i] * 2 ** (bits * i);
    out.push(word | 0);
  }
  expect(out.length).toBe((z.length / n) * ((n * bits) / 32));
  return Int32Array.from(out);
}

const hex = (w: number) => `0x${(w >>> 0).toString(16).padStart(8, "0")}`;

function layerFrom(k: number, n: number, f: (r: number, c: number) => number, bits: Bits = 4): QuantizedLayer {
  const q = new Uint8Array(k * n);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) q[r * n + c] = f(r, c);
  return { k, n, bits, groupSize: -1, symmetric: true, q, scales: new Uint16Array(n).fill(0x3c00) };
}

describe("Marlin 4-bit: hand-derived goldens (k=16, n=64)", () => {
  it("q = row: each lane's word holds rows r, r+8, r, r+8, r+1, r+9, r+1, r+9", () => {
    // lane L reads rows r = 2(L%4), r+1, r+8, r+9 of columns L/4 and L/4+8; interleaved
    // [0,2,4,6,1,3,5,7] that is (r,c) (r+8,c) (r,c+8) (r+8,c+8) (r+1,c) (r+9,c) (r+1,c+8) (r+9,c+8),
    // low nibble first. Word index = 4*lane + tile.
    const p = packMarlin(layerFrom(16, 64, (r) => r));
    expect(p.qweight.length).toBe(128);
    const byLaneMod4 = [0x91918080, 0xb3b3a2a2, 0xd5d5c4c4, 0xf7f7e6e6];
    for (let lane = 0; lane < 32; lane++) {
      for (let tile = 0; tile < 4; tile++) expect(hex(p.qweight[4 * lane + tile])).toBe(hex(byLaneMod4[lane % 4]));
    }
  });

  it("q = column within the tile: nibbles c, c, c+8, c+8, c, c, c+8, c+8", () => {
    const p = packMarlin(layerFrom(16, 64, (_r, c) => c % 16));
    expect(hex(p.qweight[0])).toBe("0x88008800"); // lane 0: column 0
    expect(hex(p.qweight[4 * 4])).toBe("0x99119911"); // lane 4: column 1
    expect(hex(p.qweight[4 * 31 + 3])).toBe("0xff77ff77"); // lane 31: column 7
  });

  it("q = tile index: word 4*lane + t is t in every nibble", () => {
    const p = packMarlin(layerFrom(16, 64, (_r, c) => Math.floor(c / 16)));
    for (let lane = 0; lane < 32; lane++) {
      expect(Array.from(p.qweight.subarray(4 * lane, 4 * lane + 4), hex)).toEqual([
        "0x00000000",
        "0x11111111",
        "0x22222222",
        "0x33333333",
      ]);
    }
  });

  it("blocks of 64 columns follow each other along a row; rows of 16 along k", () => {
    // k=32, n=128: q = 1 in the second 16-row band, 64-column block 1 only.
    const p = packMarlin(layerFrom(32, 128, (r, c) => (r >= 16 && c >= 64 ? 1 : 0)));
    expect(p.qweight.length).toBe(2 * 256);
    for (let i = 0; i < 512; i++) expect(p.qweight[i]).toBe(i >= 256 + 128 ? 0x11111111 : 0);
  });

  it("8-bit: q = row packs bytes (r, r+8, r+1, r+9) twice per tile, lane-major", () => {
    const p = packMarlin(layerFrom(16, 64, (r) => r, 8));
    expect(p.qweight.length).toBe(256);
    const byLaneMod4 = [0x09010800, 0x0b030a02, 0x0d050c04, 0x0f070e06];
    for (let lane = 0; lane < 32; lane++) {
      for (let w = 0; w < 8; w++) expect(hex(p.qweight[8 * lane + w])).toBe(hex(byLaneMod4[lane % 4]));
    }
  });

  it("scale permutations (grouped: i%8*8 + i/8; per-channel: pairs 2i, 2i+1 + 0/8/16/24)", () => {
    expect(Array.from(SCALE_PERM.subarray(0, 10))).toEqual([0, 8, 16, 24, 32, 40, 48, 56, 1, 9]);
    expect(Array.from(SCALE_PERM_SINGLE.subarray(0, 16))).toEqual([0, 1, 8, 9, 16, 17, 24, 25, 2, 3, 10, 11, 18, 19, 26, 27]);
    const k = 256;
    const n = 64;
    const scales = Uint16Array.from({ length: 2 * n }, (_, i) => i);
    const g = packMarlin({ k, n, bits: 4, groupSize: 128, symmetric: true, q: new Uint8Array(k * n), scales });
    expect(Array.from(g.scales.subarray(64, 68))).toEqual([64, 72, 80, 88]);
    const s1 = Uint16Array.from({ length: n }, (_, i) => i);
    const pc = packMarlin({ k, n, bits: 4, groupSize: -1, symmetric: true, q: new Uint8Array(k * n), scales: s1 });
    expect(Array.from(pc.scales.subarray(32, 40))).toEqual([32, 33, 40, 41, 48, 49, 56, 57]);
  });

  it("zero points: 64-perm, then interleave, then pack (4-bit word 0 of z=j%16 is 0x88880000)", () => {
    const k = 128;
    const n = 64;
    const zeros = Uint8Array.from({ length: n }, (_, j) => j % 16);
    const p = packMarlin({
      k,
      n,
      bits: 4,
      groupSize: -1,
      symmetric: false,
      q: new Uint8Array(k * n),
      scales: new Uint16Array(n),
      zeros,
    });
    expect(p.zeros!.length).toBe(8);
    expect(hex(p.zeros![0])).toBe("0x88880000");
  });

  it("the weight permutation is a permutation of 0..1023", () => {
    for (const bits of [4, 8] as Bits[]) {
      const sorted = Array.from(weightPerm(bits)).sort((a, b) => a - b);
      expect(sorted).toEqual(Array.from({ length: 1024 }, (_, i) => i));
    }
  });
});

describe("Marlin layout vs the slow reference packer", () => {
  const shapes: [number, number][] = [
    [16, 64],
    [128, 256],
    [256, 128],
    [384, 192],
  ];
  for (const bits of [4, 8] as Bits[]) {
    for (const groupSize of [-1, 32, 64, 128]) {
      for (const [k, n] of shapes) {
        if (groupSize !== -1 && k % groupSize !== 0) continue;
        it(`${bits}-bit group ${groupSize} ${k}x${n}: weights and scales bit-identical`, () => {
          const rng = new Rng(seed + k * 7 + n + groupSize + bits);
          const layer = randomLayer(rng, k, n, bits, groupSize, true);
          const p = packMarlin(layer);
          expectSame(p.qweight, slowPackWeights(layer.q, k, n, bits), "p.qweight");
          expectSame(p.scales, slowPermuteScales(layer.scales, k, groupSize), "p.scales");
          const asym = randomLayer(rng, k, n, bits, groupSize, false);
          const pa = packMarlin(asym);
          expectSame(pa.qweight, slowPackWeights(asym.q, k, n, bits), "pa.qweight");
          expectSame(pa.zeros, slowPackZeros(asym.zeros!, n, bits), "pa.zeros");
        });
      }
    }
  }

  it("group size == k uses the per-channel scale permutation, like -1", () => {
    const rng = new Rng(seed);
    const layer = randomLayer(rng, 128, 64, 4, 128, true);
    expectSame(packMarlin(layer).scales, slowPermuteScales(layer.scales, 128, -1), "packMarlin(layer).scales");
  });
});

describe("unpackMarlin(packMarlin(x)) == x", () => {
  for (const bits of [4, 8] as Bits[]) {
    for (const groupSize of [-1, 32, 64, 128]) {
      for (const symmetric of [true, false]) {
        for (const actOrder of groupSize === -1 ? [false] : [false, true]) {
          it(`${bits}-bit group ${groupSize} ${symmetric ? "sym" : "asym"}${actOrder ? " act-order" : ""}`, () => {
            const rng = new Rng(seed ^ (bits * 131 + groupSize * 7 + (symmetric ? 1 : 0) + (actOrder ? 2 : 0)));
            const k = 512;
            const n = 192;
            const layer = randomLayer(rng, k, n, bits, groupSize, symmetric, actOrder);
            const p = packMarlin(layer);
            expect(p.qweight.length).toBe((k * n * bits) / 32);
            expect(p.scales.length).toBe(numGroups(k, groupSize) * n);
            if (actOrder) {
              // the activations' gather order sorts g_idx, stably
              const sorted = Array.from(p.perm!, (i) => layer.gIdx![i]);
              expectSame(Array.from(p.gIdx!), sorted, "Array.from(p.gIdx!)");
              for (let i = 1; i < k; i++) {
                expect(sorted[i] > sorted[i - 1] || (sorted[i] === sorted[i - 1] && p.perm![i] > p.perm![i - 1])).toBe(
                  true,
                );
              }
              // rows are packed in perm order: same words as packing the gathered rows
              const gathered = new Uint8Array(k * n);
              for (let i = 0; i < k; i++) gathered.set(layer.q.subarray(p.perm![i] * n, p.perm![i] * n + n), i * n);
              expectSame(p.qweight, slowPackWeights(gathered, k, n, bits), "p.qweight");
            }
            const back = unpackMarlin(p);
            expectSame(back.q, layer.q, "back.q");
            expectSame(back.scales, layer.scales, "back.scales");
            expectSame(back.zeros, layer.zeros, "back.zeros");
            expectSame(back.gIdx, layer.gIdx, "back.gIdx");
            expectSame(dequantize(back), dequantize(layer), "dequantize(back)");
          });
        }
      }
    }
  }

  it("refuses shapes and values the layout cannot hold", () => {
    const rng = new Rng(seed);
    expect(() => packMarlin(randomLayer(rng, 24, 64, 4, -1, true))).toThrow(AlignmentError);
    expect(() => packMarlin(randomLayer(rng, 32, 96, 4, -1, true))).toThrow(AlignmentError);
    const l = randomLayer(rng, 32, 64, 4, -1, true);
    l.q[5] = 16;
    expect(() => packMarlin(l)).toThrow(InvalidArgumentError);
    const bad: MarlinLayer = { ...packMarlin(randomLayer(rng, 32, 64, 4, 32, true, true)) };
    bad.perm = bad.perm!.slice();
    bad.perm[0] = bad.perm[1];
    expect(() => unpackMarlin(bad)).toThrow(InvalidArgumentError);
  });
});

describe("Marlin layout vs numpy goldens (test/golden/make_marlin_golden.py)", () => {
  const cases = JSON.parse(readFileSync(join(__dirname, "golden/marlin-golden.json"), "utf8")) as {
    k: number;
    n: number;
    bits: Bits;
    groupSize: number;
    qweight: number[];
    scales: number[];
    zeros: number[];
  }[];
  it.each(cases.map((c) => [c.k, c.n, c.bits, c.groupSize, c] as const))("%i x %i, %i-bit, group %i", (k, n, bits, g, c) => {
    const groups = g === -1 ? 1 : k / g;
    const q = Uint8Array.from({ length: k * n }, (_, i) => (i * 7 + (i >> 5) * 3) % (1 << bits));
    const scales = Uint16Array.from({ length: groups * n }, (_, i) => (i * 37) % 65536);
    const zeros = Uint8Array.from({ length: groups * n }, (_, i) => (i * 5 + 3) % (1 << bits));
    const p = packMarlin({ k, n, bits, groupSize: g, symmetric: false, q, scales, zeros });
    expectSame(p.qweight, c.qweight, "qweight");
    expectSame(p.scales, c.scales, "scales");
    expectSame(p.zeros, c.zeros, "zeros");
  });
});
