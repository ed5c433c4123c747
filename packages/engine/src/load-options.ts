/**
 * LoadOptions checked against the model and this machine before any weight is read: every count a
 * positive integer in range, the KV cache within memory, and the model length (RoPE tables, block
 * tables) bounded by what the KV cache can hold, never by the config's max_position_embeddings
 * alone (a config may claim 10^9 positions).
 */
import { totalmem } from "node:os";
import { InvalidArgumentError } from "@marlin/core";
import type { LoadOptions } from "./llm.js";
import { kvBytesPerToken, type ModelConfig } from "./model/config.js";

/** The longest typed array V8 makes in Node 20 (elements); one layer's K or V cache is one array. */
export const MAX_TYPED_ARRAY_LENGTH = 2 ** 32;
/** The CPU KV cache's default size in tokens. */
export const CPU_KV_TOKENS = 32768;

/** What the runner is built with: the model length bounded by the cache, the cache checked against memory. */
export interface CachePlan {
  device: "cpu" | "cuda";
  blockSize: number;
  maxModelLen: number;
  /** CPU: always set. GPU: set when numBlocks or kvCacheTokens was given (else sized from free memory). */
  numBlocks?: number;
}

function count(opts: Record<string, unknown>, key: string, max: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > max)
    throw new InvalidArgumentError(`${key} must be an integer in [1, ${max}], got ${typeof v === "number" ? v : JSON.stringify(v)}`);
  return v;
}

const GIB = 2 ** 30;
const gib = (b: number) => `${(b / GIB).toFixed(1)} GiB`;

/**
 * Checks `opts` (InvalidArgumentError naming the option) and plans the KV cache and model length.
 * `free`: the GPU's free bytes when the GPU path is taken (the model length is bounded by what a
 * cache in that memory could hold when no size is given).
 */
export function planCache(config: ModelConfig, opts: LoadOptions, device: "cpu" | "cuda", gpu?: { free: number; total: number }): CachePlan {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) throw new InvalidArgumentError("load options must be an object");
  const o = opts as Record<string, unknown>;
  const blockSize = count(o, "blockSize", 4096) ?? 16;
  const numBlocksOpt = count(o, "numBlocks", 2 ** 40);
  const tokensOpt = count(o, "kvCacheTokens", 2 ** 44);
  const maxModelLenOpt = count(o, "maxModelLen", 2 ** 31 - 1);
  const maxNumSeqs = count(o, "maxNumSeqs", 65536) ?? 64;
  count(o, "maxNumBatchedTokens", 2 ** 24);
  const frac = opts.gpuMemoryFraction;
  if (frac !== undefined && !(typeof frac === "number" && frac > 0 && frac <= 1))
    throw new InvalidArgumentError(`gpuMemoryFraction must be a number in (0, 1], got ${JSON.stringify(frac)}`);
  if (opts.device !== undefined && !["auto", "cpu", "cuda"].includes(opts.device as string))
    throw new InvalidArgumentError(`unknown device ${JSON.stringify(opts.device)} (auto, cpu or cuda)`);

  const declared = config.maxPositionEmbeddings;
  const kvd = config.numKvHeads * config.headDim;
  const bytesPerToken = kvBytesPerToken(config, device === "cpu" ? 4 : 2);
  let numBlocks = numBlocksOpt ?? (tokensOpt !== undefined ? Math.ceil(tokensOpt / blockSize) : undefined);
  if (device === "cpu" && numBlocks === undefined) {
    const tokens = Math.min(CPU_KV_TOKENS, maxNumSeqs * Math.min(maxModelLenOpt ?? declared, declared));
    numBlocks = Math.max(1, Math.ceil(tokens / blockSize));
  }
  let capacity: number;
  if (numBlocks !== undefined) {
    capacity = numBlocks * blockSize;
    const memory = device === "cpu" ? totalmem() : (gpu?.total ?? Number.POSITIVE_INFINITY);
    const where = device === "cpu" ? "this machine has" : "the GPU has";
    if (capacity * bytesPerToken > memory)
      throw new InvalidArgumentError(
        `a KV cache of ${numBlocks} blocks x ${blockSize} tokens needs ${gib(capacity * bytesPerToken)} (${bytesPerToken} bytes per token); ${where} ${gib(memory)}`,
      );
    if (device === "cpu" && capacity * kvd > MAX_TYPED_ARRAY_LENGTH)
      throw new InvalidArgumentError(`a KV cache of ${capacity} tokens x ${kvd} floats per layer exceeds the largest typed array (${MAX_TYPED_ARRAY_LENGTH} elements)`);
  } else {
    // GPU without a size: the runner sizes the cache from free memory after the weights; no
    // sequence can be longer than a cache in all of today's free memory.
    capacity = Math.max(blockSize, Math.floor(((gpu?.free ?? 0) * (frac ?? 0.8)) / bytesPerToken));
  }
  let maxModelLen: number;
  if (maxModelLenOpt !== undefined) {
    maxModelLen = Math.min(maxModelLenOpt, declared);
    if (numBlocks !== undefined && maxModelLen > capacity)
      throw new InvalidArgumentError(`maxModelLen ${maxModelLen} exceeds what the KV cache holds (${capacity} tokens); raise numBlocks / kvCacheTokens or lower maxModelLen`);
  } else maxModelLen = Math.min(declared, capacity);
  return { device, blockSize, maxModelLen, ...(numBlocks !== undefined ? { numBlocks } : {}) };
}
