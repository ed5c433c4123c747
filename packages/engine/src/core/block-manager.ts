/**
 * The paged KV cache's bookkeeping: fixed-size blocks with reference counts, and prefix caching by
 * chained block hashes (a full block's hash covers its tokens and, through its parent's hash, every
 * token before it). Free blocks keep their hash until they are reused, so a later request with the
 * same prefix can revive them; the least recently freed block is reused first.
 */
import { InvalidArgumentError } from "@marlin/core";
import type { Sequence } from "./sequence.js";

/** 64-bit chained hash of one block of tokens, as 16 hex digits. */
export function hashBlock(parent: string, tokens: ArrayLike<number>, start: number, end: number): string {
  let h1 = 0x811c9dc5 ^ (end - start);
  let h2 = 0x01000193;
  for (let i = 0; i < parent.length; i++) {
    h1 = Math.imul(h1 ^ parent.charCodeAt(i), 0x85ebca6b);
    h2 = Math.imul(h2 ^ parent.charCodeAt(i), 0xc2b2ae35);
  }
  for (let i = start; i < end; i++) {
    const t = tokens[i];
    h1 = Math.imul(h1 ^ t, 0xcc9e2d51);
    h1 = (h1 << 15) | (h1 >>> 17);
    h2 = Math.imul(h2 ^ (t + 0x9e3779b9), 0x1b873593);
    h2 = (h2 << 13) | (h2 >>> 19);
    h1 = (h1 + h2) | 0;
    h2 = (h2 + h1) | 0;
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
  h1 ^= h1 >>> 13;
  h2 ^= h2 >>> 16;
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}

export interface CacheStats {
  queries: number;
  hitTokens: number;
  queriedTokens: number;
}

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly prefixCaching: boolean;
  private readonly refCount: Int32Array;
  private readonly hashOf: (string | undefined)[];
  private readonly byHash = new Map<string, number>();
  /** Free blocks in reuse order (insertion order of a Set: oldest first). */
  private readonly free = new Set<number>();
  readonly stats: CacheStats = { queries: 0, hitTokens: 0, queriedTokens: 0 };

  constructor(numBlocks: number, blockSize: number, prefixCaching = true) {
    if (!Number.isSafeInteger(numBlocks) || numBlocks < 1) throw new InvalidArgumentError(`numBlocks must be >= 1, got ${numBlocks}`);
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new InvalidArgumentError(`blockSize must be >= 1, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.prefixCaching = prefixCaching;
    this.refCount = new Int32Array(numBlocks);
    this.hashOf = new Array(numBlocks).fill(undefined);
    for (let b = 0; b < numBlocks; b++) this.free.add(b);
  }

  get numFreeBlocks(): number {
    return this.free.size;
  }

  /** Blocks currently holding a cached (hashed) prefix. */
  get numCachedBlocks(): number {
    return this.byHash.size;
  }

  refCountOf(block: number): number {
    return this.refCount[block];
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * The cached prefix of a waiting sequence: blocks whose hash chain matches its leading full
   * blocks. At least one token is always left to compute (its logits are needed).
   */
  findCachedPrefix(seq: Sequence): { blocks: number[]; hashes: string[] } {
    const blocks: number[] = [];
    const hashes: string[] = [];
    if (!this.prefixCaching) return { blocks, hashes };
    const full = Math.floor((seq.length - 1) / this.blockSize);
    let parent = "";
    for (let i = 0; i < full; i++) {
      const h = hashBlock(parent, seq.tokens, i * this.blockSize, (i + 1) * this.blockSize);
      const b = this.byHash.get(h);
      if (b === undefined) break;
      blocks.push(b);
      hashes.push(h);
      parent = h;
    }
    return { blocks, hashes };
  }

  /** Whether `newBlocks` fresh blocks can be taken after reviving `revived` cached free blocks. */
  private fits(newBlocks: number, cached: number[]): boolean {
    let revived = 0;
    for (const b of cached) if (this.refCount[b] === 0) revived++;
    return this.free.size - revived >= newBlocks;
  }

  /**
   * Admits a waiting sequence with its cached prefix and enough blocks for `numTokens` tokens.
   * Returns false (changing nothing) when the blocks are not there.
   */
  admit(seq: Sequence, cached: { blocks: number[]; hashes: string[] }, numTokens: number): boolean {
    if (seq.blockTable.length) throw new InvalidArgumentError(`sequence ${seq.requestId} already holds blocks`);
    const need = Math.max(0, this.blocksFor(numTokens) - cached.blocks.length);
    if (!this.fits(need, cached.blocks)) return false;
    for (const b of cached.blocks) {
      if (this.refCount[b]++ === 0) this.free.delete(b);
      seq.blockTable.push(b);
    }
    seq.blockHashes = cached.hashes.slice();
    seq.numComputed = cached.blocks.length * this.blockSize;
    seq.numCachedTokens = seq.numComputed;
    this.stats.queries++;
    this.stats.queriedTokens += seq.length;
    this.stats.hitTokens += seq.numComputed;
    for (let i = 0; i < need; i++) seq.blockTable.push(this.takeFresh());
    return true;
  }

  /** Whether a running sequence can grow to `numTokens` tokens. */
  canGrow(seq: Sequence, numTokens: number): boolean {
    return this.free.size >= Math.max(0, this.blocksFor(numTokens) - seq.blockTable.length);
  }

  /** Grows a running sequence's block table to hold `numTokens` tokens; false if blocks ran out. */
  grow(seq: Sequence, numTokens: number): boolean {
    const need = this.blocksFor(numTokens) - seq.blockTable.length;
    if (need <= 0) return true;
    if (this.free.size < need) return false;
    for (let i = 0; i < need; i++) seq.blockTable.push(this.takeFresh());
    return true;
  }

  /** Registers the hashes of the sequence's blocks that became full and computed. */
  commit(seq: Sequence): void {
    if (!this.prefixCaching) return;
    const full = Math.floor(seq.numComputed / this.blockSize);
    for (let i = seq.blockHashes.length; i < full; i++) {
      const parent = i ? seq.blockHashes[i - 1] : "";
      const h = hashBlock(parent, seq.tokens, i * this.blockSize, (i + 1) * this.blockSize);
      seq.blockHashes.push(h);
      const b = seq.blockTable[i];
      if (!this.byHash.has(h) && this.hashOf[b] === undefined) {
        this.byHash.set(h, b);
        this.hashOf[b] = h;
      }
    }
  }

  /** Releases a sequence's blocks (last block first, so a prefix's tail is evicted before its head). */
  release(seq: Sequence): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) {
      const b = seq.blockTable[i];
      if (this.refCount[b] <= 0) throw new InvalidArgumentError(`block ${b} released more often than taken`);
      if (--this.refCount[b] === 0) this.free.add(b);
    }
    seq.blockTable = [];
    seq.blockHashes = [];
    seq.numComputed = 0;
  }

  /** Drops every cached hash (e.g. after weights change). Only free blocks may be cached. */
  resetPrefixCache(): void {
    for (const [h, b] of this.byHash) {
      if (this.refCount[b] === 0) {
        this.byHash.delete(h);
        this.hashOf[b] = undefined;
      }
    }
  }

  private takeFresh(): number {
    const it = this.free.values().next();
    if (it.done) throw new InvalidArgumentError("no free KV block");
    const b = it.value;
    this.free.delete(b);
    const h = this.hashOf[b];
    if (h !== undefined) {
      if (this.byHash.get(h) === b) this.byHash.delete(h);
      this.hashOf[b] = undefined;
    }
    this.refCount[b] = 1;
    return b;
  }
}
