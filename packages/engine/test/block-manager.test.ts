import { describe, expect, test } from "vitest";
import { BlockManager, hashBlock } from "../src/core/block-manager.js";
import { resolveSamplingParams } from "../src/core/sampling-params.js";
import { Sequence } from "../src/core/sequence.js";

const params = resolveSamplingParams({});
let n = 0;
const seq = (tokens: number[]) => new Sequence(`s${n}`, n++, tokens, params, [0, 0], 0);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("BlockManager", () => {
  test("allocates, grows and releases with reference counts", () => {
    const bm = new BlockManager(8, 4);
    const s = seq(range(0, 10));
    expect(bm.admit(s, bm.findCachedPrefix(s), 10)).toBe(true);
    expect(s.blockTable.length).toBe(3);
    expect(bm.numFreeBlocks).toBe(5);
    expect(bm.grow(s, 13)).toBe(true);
    expect(s.blockTable.length).toBe(4);
    expect(bm.grow(s, 40)).toBe(false);
    expect(s.blockTable.length).toBe(4);
    bm.release(s);
    expect(bm.numFreeBlocks).toBe(8);
  });

  test("prefix caching shares computed full blocks through chained hashes", () => {
    const bm = new BlockManager(16, 4);
    const a = seq(range(0, 11));
    bm.admit(a, bm.findCachedPrefix(a), 11);
    a.numComputed = 11;
    bm.commit(a);
    expect(a.blockHashes.length).toBe(2);
    // Same first 8 tokens, different tail: two blocks hit.
    const b = seq([...range(0, 8), 99, 98, 97]);
    const hit = bm.findCachedPrefix(b);
    expect(hit.blocks).toEqual(a.blockTable.slice(0, 2));
    bm.admit(b, hit, b.length);
    expect(b.numComputed).toBe(8);
    expect(bm.refCountOf(a.blockTable[0])).toBe(2);
    // Same second block but a different first block: the chain breaks at block 0.
    const c = seq([7, 7, 7, 7, 4, 5, 6, 7, 8]);
    expect(bm.findCachedPrefix(c).blocks).toEqual([]);
    bm.release(a);
    bm.release(b);
    expect(bm.numFreeBlocks).toBe(16);
    // Freed blocks stay cached until reused.
    const d = seq(range(0, 9));
    expect(bm.findCachedPrefix(d).blocks.length).toBe(2);
  });

  test("a fully cached prompt still leaves its last token to compute", () => {
    const bm = new BlockManager(8, 4);
    const a = seq(range(0, 8));
    bm.admit(a, bm.findCachedPrefix(a), 8);
    a.numComputed = 8;
    bm.commit(a);
    const b = seq(range(0, 8));
    expect(bm.findCachedPrefix(b).blocks.length).toBe(1);
  });

  test("reusing a cached free block evicts its hash", () => {
    const bm = new BlockManager(2, 4);
    const a = seq(range(0, 5));
    bm.admit(a, bm.findCachedPrefix(a), 5);
    a.numComputed = 5;
    bm.commit(a);
    bm.release(a);
    expect(bm.numCachedBlocks).toBe(1);
    const b = seq(range(100, 108));
    bm.admit(b, bm.findCachedPrefix(b), 8);
    expect(bm.numCachedBlocks).toBe(0);
    bm.release(b);
    expect(bm.numFreeBlocks).toBe(2);
  });

  test("hashes chain", () => {
    const t = [1, 2, 3, 4];
    expect(hashBlock("", t, 0, 4)).toBe(hashBlock("", t, 0, 4));
    expect(hashBlock("", t, 0, 4)).not.toBe(hashBlock("00", t, 0, 4));
    expect(hashBlock("", t, 0, 4)).not.toBe(hashBlock("", [1, 2, 4, 3], 0, 4));
  });
});
