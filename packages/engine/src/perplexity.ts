/**
 * Perplexity of a text in fixed windows: each line is tokenized with the tokenizer's special
 * tokens (BOS) and followed by EOS, lines are concatenated, and consecutive non-overlapping
 * windows are scored (every token after the first of each window). An incomplete last window is
 * dropped unless `keepTail` is set.
 */
import { InvalidArgumentError } from "@marlin/core";
import { resolveSamplingParams } from "./core/sampling-params.js";
import { Sequence } from "./core/sequence.js";
import type { LLM } from "./llm.js";

export interface PerplexityOptions {
  window?: number;
  /** Windows per forward pass (default: as many as the KV cache and 8 allow). */
  batchWindows?: number;
  keepTail?: boolean;
  /** Append EOS after each line (default true). */
  eosAfterLine?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per scored token (nats). */
  nll: number;
  tokens: number;
  scoredTokens: number;
  windows: number;
  seconds: number;
}

export async function tokenizeLines(llm: LLM, text: string, eosAfterLine = true): Promise<number[]> {
  if (!llm.tokenizer) throw new InvalidArgumentError("perplexity needs a tokenizer");
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const eos = llm.engine.defaults.eosTokenIds[0];
  if (eosAfterLine && eos === undefined) throw new InvalidArgumentError("the model defines no EOS token");
  const enc = await llm.tokenizer.encodeBatch(lines, true);
  const ids: number[] = [];
  for (const e of enc) {
    for (const t of e) ids.push(t);
    if (eosAfterLine) ids.push(eos);
  }
  return ids;
}

export async function perplexity(llm: LLM, text: string, opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const t0 = performance.now();
  const W = opts.window ?? 256;
  if (!Number.isInteger(W) || W < 2) throw new InvalidArgumentError("window must be an integer >= 2");
  const ids = await tokenizeLines(llm, text, opts.eosAfterLine ?? true);
  const windows: number[][] = [];
  for (let s = 0; s + W <= ids.length; s += W) windows.push(ids.slice(s, s + W));
  const tail = ids.length % W;
  if (opts.keepTail && tail >= 2) windows.push(ids.slice(ids.length - tail));
  const engine = llm.engine;
  const blocks = engine.blocks;
  if (engine.hasUnfinished) throw new InvalidArgumentError("perplexity needs an idle engine");
  const bs = blocks.blockSize;
  const perWindow = Math.ceil(W / bs);
  const fit = Math.floor(blocks.numFreeBlocks / perWindow);
  const rowsCap = engine.runner.maxBatchRows ? Math.floor(engine.runner.maxBatchRows / W) : Number.POSITIVE_INFINITY;
  if (rowsCap < 1) throw new InvalidArgumentError(`a window of ${W} exceeds the runner's ${engine.runner.maxBatchRows} rows per pass`);
  const batch = Math.max(1, Math.min(opts.batchWindows ?? 8, fit, rowsCap));
  if (fit < 1) throw new InvalidArgumentError(`the KV cache (${blocks.numFreeBlocks} free blocks) cannot hold one window`);
  const params = resolveSamplingParams({});
  let nll = 0;
  let scored = 0;
  for (let w0 = 0; w0 < windows.length; w0 += batch) {
    const group = windows.slice(w0, w0 + batch);
    // Pseudo-sequences hold the blocks so the cache accounting stays exact.
    const seqs = group.map((win, i) => new Sequence(`ppl-${w0 + i}`, -1, win, params, [0, 0], 0));
    try {
      for (const s of seqs) if (!blocks.admit(s, { blocks: [], hashes: [] }, s.length)) throw new InvalidArgumentError("KV cache too small");
      const rows = group.reduce((a, g) => a + g.length, 0);
      const maxBlocks = Math.max(...seqs.map((s) => s.blockTable.length));
      const b = {
        tokens: new Int32Array(rows),
        positions: new Int32Array(rows),
        slots: new Int32Array(rows),
        seqOfRow: new Int32Array(rows),
        blockTables: new Int32Array(seqs.length * maxBlocks),
        maxBlocks,
      };
      const logitRows: number[] = [];
      const targets: number[] = [];
      let row = 0;
      seqs.forEach((s, si) => {
        b.blockTables.set(s.blockTable, si * maxBlocks);
        for (let p = 0; p < s.length; p++, row++) {
          b.tokens[row] = s.tokens[p];
          b.positions[row] = p;
          b.slots[row] = s.blockTable[Math.floor(p / bs)] * bs + (p % bs);
          b.seqOfRow[row] = si;
          if (p + 1 < s.length) {
            logitRows.push(row);
            targets.push(s.tokens[p + 1]);
          }
        }
      });
      const lp = engine.runner.score(b, Int32Array.from(logitRows), Int32Array.from(targets));
      for (let i = 0; i < lp.length; i++) nll -= lp[i];
      scored += lp.length;
    } finally {
      for (const s of seqs) if (s.blockTable.length) blocks.release(s);
    }
    opts.onProgress?.(Math.min(w0 + batch, windows.length), windows.length);
    await new Promise((r) => setImmediate(r));
  }
  const mean = nll / Math.max(1, scored);
  return {
    perplexity: Math.exp(mean),
    nll: mean,
    tokens: ids.length,
    scoredTokens: scored,
    windows: windows.length,
    seconds: (performance.now() - t0) / 1000,
  };
}
