// The 2:4 layout: bit-exact round trips, single-element placement against the documented rules,
// and refusals with typed errors.
import { AlignmentError, InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import type { QuantizedLayer } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { metaWord, NIBBLE_POS, NotSparse24Error, packSparse24, unpackSparse24, valueWord } from "../src/index.js";
import { randomSparseLayer } from "./helpers.js";

const seed = runSeed();
console.log(`sparse24 layout tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

const SHAPES: [number, number][] = [
  [128, 16],
  [128, 64],
  [256, 48],
  [384, 128],
  [1024, 80],
];

describe("packSparse24 / unpackSparse24", () => {
  for (const g of [128, -1])
    it(`round trips bit for bit (group ${g})`, () => {
      for (const [k, n] of SHAPES) {
        const layer = randomSparseLayer(rng, k, n, g);
        const p = packSparse24(layer);
        expect(p.values.length).toBe((k * n) / 16);
        expect(p.meta.length).toBe((k * n) / 32);
        const back = unpackSparse24(p);
        expect(back).toEqual(layer);
        const again = packSparse24(back);
        expect(Array.from(again.values)).toEqual(Array.from(p.values));
        expect(Array.from(again.meta)).toEqual(Array.from(p.meta));
      }
    });

  it("places a single value where layout.ts says (tile, lane, nibble, metadata)", () => {
    const k = 256;
    const n = 32;
    for (let trial = 0; trial < 40; trial++) {
      const i = rng.int(0, k);
      const j = rng.int(0, n);
      const q = new Uint8Array(k * n).fill(8);
      q[i * n + j] = 3;
      const layer: QuantizedLayer = { k, n, bits: 4, groupSize: 128, symmetric: true, q, scales: new Uint16Array(2 * n).fill(0x3c00) };
      const p = packSparse24(layer);
      const kt = i >> 5;
      const chunkIn = (i & 31) >> 2;
      const pos = i & 3;
      const row = j & 15;
      const g = row & 7;
      const t = chunkIn & 3;
      const lane = 4 * g + t;
      // element: pair 0/1 (chunks 0-3) or 2/3 (chunks 4-7), +1 for row g+8; first kept unless pos 0 is free
      const e = 4 * (chunkIn >> 2) + 2 * (row >> 3) + (pos === 0 ? 0 : 1);
      const w = p.values[valueWord(kt >> 2, j >> 4, n / 16, lane, kt & 3)];
      expect((w >>> (4 * NIBBLE_POS[e])) & 0xf, `i=${i} j=${j}`).toBe(3);
      const mw = p.meta[metaWord(kt >> 2, j >> 4, n / 16, g, chunkIn >> 2, kt & 3)];
      const nib = (mw >>> (16 * (row >> 3) + 4 * (chunkIn & 3))) & 0xf;
      expect(nib, `i=${i} j=${j}`).toBe(pos === 0 ? 0b0100 : pos << 2); // (0,1) or (0,pos)
      // every other code is the zero and every metadata nibble two ascending indices
      let others = 0;
      for (let x = 0; x < p.values.length; x++) for (let b = 0; b < 8; b++) if (((p.values[x] >>> (4 * b)) & 0xf) !== 8) others++;
      expect(others).toBe(1);
    }
  });
});

describe("packSparse24 refusals (typed errors before allocating)", () => {
  const base = () => randomSparseLayer(rng, 128, 16, 128);
  it("names the first chunk that is not 2:4", () => {
    const l = base();
    for (let p = 0; p < 4; p++) l.q[(8 + p) * 16 + 5] = 1; // rows 8..11 of column 5: 4 nonzeros
    for (let p = 0; p < 3; p++) l.q[(64 + p) * 16 + 2] = 1; // a later chunk
    let err: unknown;
    try {
      packSparse24(l);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NotSparse24Error);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as NotSparse24Error).row).toBe(8);
    expect((err as NotSparse24Error).col).toBe(5);
    expect((err as Error).message).toMatch(/rows 8\.\.11 of column 5 hold 4 nonzero/);
  });
  it("refuses other kinds and shapes", () => {
    expect(() => packSparse24({ ...base(), bits: 8 })).toThrow(InvalidArgumentError);
    expect(() => packSparse24({ ...base(), symmetric: false, zeros: new Uint8Array(16) })).toThrow(/symmetric/);
    expect(() => packSparse24({ ...base(), gIdx: new Int32Array(128) })).toThrow(/act-order/);
    expect(() => packSparse24({ ...base(), groupSize: 64 })).toThrow(/group size 64/);
    expect(() => packSparse24({ ...randomSparseLayer(rng, 128, 16, -1), k: 64, q: new Uint8Array(64 * 16).fill(8) })).toThrow(AlignmentError);
    expect(() => packSparse24({ ...randomSparseLayer(rng, 128, 32, 128), n: 24, q: new Uint8Array(128 * 24).fill(8) })).toThrow(AlignmentError);
    expect(() => packSparse24({ ...base(), q: new Uint8Array(5) })).toThrow(ShapeError);
    expect(() => packSparse24({ ...base(), scales: new Uint16Array(3) })).toThrow(ShapeError);
    const big = base();
    big.q[0] = 16;
    expect(() => packSparse24(big)).toThrow(/not a 4-bit code/);
  });
  it("unpack refuses bad arrays and invalid metadata", () => {
    const p = packSparse24(base());
    expect(() => unpackSparse24({ ...p, values: new Int32Array(3) })).toThrow(ShapeError);
    expect(() => unpackSparse24({ ...p, meta: new Int32Array(p.meta.length) })).toThrow(/ascending/);
  });
});
