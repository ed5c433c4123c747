/**
 * The engine core: requests in, tokens out, one scheduler step at a time. A server or the offline
 * LLM drives it by calling step() while hasUnfinished; every step runs one forward pass over the
 * running batch (continuous batching), then samples, detokenizes, applies stop rules and reports.
 */
import { InvalidArgumentError, MarlinError, Rng } from "@marlin/core";
import type { GenerationDefaults } from "../model/config.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { BlockManager } from "./block-manager.js";
import type { RequestOutput } from "./outputs.js";
import type { ModelRunner, StepBatch } from "./runner.js";
import { resolveSamplingParams, type SamplingParams } from "./sampling-params.js";
import { Scheduler } from "./scheduler.js";
import { type FinishReason, Sequence } from "./sequence.js";

export interface EngineOptions {
  blockSize?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  chunkedPrefill?: boolean;
  prefixCaching?: boolean;
  /** Longest prompt + output (default: the runner's limit). */
  maxModelLen?: number;
  /** Seeds unseeded requests' draws (default: random). */
  seed?: number;
}

/** A request the engine cannot take (too long for the model or the cache). */
export class RequestRejectedError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_REQUEST_REJECTED", message);
  }
}

export interface StepStats {
  numScheduled: number;
  numBatchedTokens: number;
  numPreempted: number;
  numRunning: number;
  numWaiting: number;
}

export type OutputCallback = (out: RequestOutput) => void;

export class LLMEngine {
  readonly runner: ModelRunner;
  readonly tokenizer: Tokenizer | undefined;
  readonly defaults: GenerationDefaults;
  readonly blocks: BlockManager;
  readonly scheduler: Scheduler;
  readonly maxModelLen: number;
  readonly lastStep: StepStats = { numScheduled: 0, numBatchedTokens: 0, numPreempted: 0, numRunning: 0, numWaiting: 0 };
  private readonly seqs = new Map<string, Sequence>();
  private readonly callbacks = new Map<string, OutputCallback>();
  private readonly sentTokens = new Map<string, number>();
  private readonly sentText = new Map<string, number>();
  private readonly pendingAborts = new Set<string>();
  private readonly rng: Rng;
  private order = 0;
  private nextId = 0;
  private stepping = false;

  constructor(runner: ModelRunner, tokenizer: Tokenizer | undefined, defaults: GenerationDefaults, opts: EngineOptions = {}) {
    this.runner = runner;
    this.tokenizer = tokenizer;
    this.defaults = defaults;
    const maxModelLen = opts.maxModelLen ?? runner.maxModelLen;
    if (maxModelLen > runner.maxModelLen)
      throw new InvalidArgumentError(`maxModelLen ${maxModelLen} exceeds the runner's ${runner.maxModelLen}`);
    this.maxModelLen = maxModelLen;
    const chunked = opts.chunkedPrefill ?? true;
    const budget = opts.maxNumBatchedTokens ?? 2048;
    this.blocks = new BlockManager(runner.numBlocks, runner.blockSize, opts.prefixCaching ?? true);
    this.scheduler = new Scheduler({ maxNumSeqs: opts.maxNumSeqs ?? 64, maxNumBatchedTokens: budget, chunkedPrefill: chunked }, this.blocks);
    this.rng = new Rng(opts.seed ?? (Math.random() * 2 ** 32) >>> 0);
  }

  get hasUnfinished(): boolean {
    return this.scheduler.hasWork || this.pendingAborts.size > 0;
  }
  get numWaiting(): number {
    return this.scheduler.waiting.length;
  }
  get numRunning(): number {
    return this.scheduler.running.length;
  }
  /** The sequence of a live request (for inspection). */
  sequence(requestId: string): Sequence | undefined {
    return this.seqs.get(requestId);
  }

  /** Adds a request; text prompts are tokenized with special tokens (BOS). Returns its id. */
  async addRequest(
    prompt: string | number[],
    params: SamplingParams = {},
    opts: { requestId?: string; onOutput?: OutputCallback } = {},
  ): Promise<string> {
    const resolved = resolveSamplingParams(params);
    let ids: number[];
    if (typeof prompt === "string") {
      if (!this.tokenizer) throw new InvalidArgumentError("text prompts need a tokenizer; pass token ids");
      ids = await this.tokenizer.encode(prompt, true, this.maxModelLen); // refuses a too-long text early
    } else if (Array.isArray(prompt)) ids = prompt.slice();
    else throw new InvalidArgumentError(`a prompt must be a string or an array of token ids, got ${prompt === null ? "null" : typeof prompt}`);
    const V = this.runner.config.vocabSize;
    if (ids.length === 0) throw new RequestRejectedError("the prompt is empty");
    if (ids.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) throw new RequestRejectedError(`prompt token ids must be in [0, ${V})`);
    const total = ids.length + resolved.maxTokens;
    if (ids.length >= this.maxModelLen)
      throw new RequestRejectedError(`prompt of ${ids.length} tokens leaves no room in the model length ${this.maxModelLen}`);
    const capacity = this.blocks.numBlocks * this.blocks.blockSize;
    if (Math.min(total, this.maxModelLen) > capacity)
      throw new RequestRejectedError(`prompt + maxTokens (${total}) exceeds the KV cache (${capacity} tokens)`);
    if (!this.scheduler.config.chunkedPrefill && Math.min(total, this.maxModelLen) > this.scheduler.config.maxNumBatchedTokens)
      throw new RequestRejectedError(`without chunked prefill, prompt + maxTokens must fit maxNumBatchedTokens (${this.scheduler.config.maxNumBatchedTokens})`);
    const id = opts.requestId ?? `req-${this.nextId++}`;
    if (this.seqs.has(id)) throw new InvalidArgumentError(`request id ${id} is already in use`);
    const seed: [number, number] =
      resolved.seed !== undefined
        ? [resolved.seed >>> 0, Math.floor(resolved.seed / 2 ** 32) >>> 0]
        : [this.rng.nextU32(), this.rng.nextU32()];
    const seq = new Sequence(id, this.order++, ids, resolved, seed, performance.now());
    this.seqs.set(id, seq);
    if (opts.onOutput) this.callbacks.set(id, opts.onOutput);
    this.scheduler.add(seq);
    return id;
  }

  /** Aborts a request; it finishes with reason "abort" (at once, or after the step in flight). */
  abort(requestId: string): boolean {
    const seq = this.seqs.get(requestId);
    if (!seq || seq.isFinished) return false;
    if (this.stepping) {
      this.pendingAborts.add(requestId);
      return true;
    }
    this.finish(seq, "abort");
    this.emit(seq, []);
    return true;
  }

  /** One scheduler step: outputs of every request that changed. */
  async step(): Promise<RequestOutput[]> {
    if (this.stepping) throw new InvalidArgumentError("step() is already running");
    this.stepping = true;
    const outputs: RequestOutput[] = [];
    try {
      this.applyAborts(outputs);
      const sched = this.scheduler.schedule();
      Object.assign(this.lastStep, {
        numScheduled: sched.items.length,
        numBatchedTokens: sched.numBatchedTokens,
        numPreempted: sched.preempted.length,
        numRunning: this.scheduler.running.length,
        numWaiting: this.scheduler.waiting.length,
      });
      if (sched.items.length === 0) return outputs;
      const now = performance.now();
      for (const it of sched.items) it.seq.timings.firstScheduled ??= now;
      const batch = this.buildBatch(sched.items);
      const sampled = this.runner.execute(batch);
      const t = performance.now();
      const changed: Sequence[] = [];
      let si = 0;
      for (const it of sched.items) {
        const seq = it.seq;
        seq.numComputed = it.start + it.numTokens;
        this.blocks.commit(seq);
        if (!it.sample) continue;
        const tok = sampled[si++];
        seq.tokens.push(tok);
        seq.timings.firstToken ??= t;
        seq.timings.lastToken = t;
        changed.push(seq);
      }
      await this.detokenize(changed);
      for (const seq of changed) {
        const before = this.sentTokens.get(seq.requestId) ?? 0;
        this.checkStop(seq);
        outputs.push(this.emit(seq, seq.outputIds.slice(before)));
      }
      this.applyAborts(outputs);
      return outputs;
    } finally {
      this.stepping = false;
    }
  }

  private applyAborts(outputs: RequestOutput[]): void {
    for (const id of this.pendingAborts) {
      const seq = this.seqs.get(id);
      if (seq && !seq.isFinished) {
        this.finish(seq, "abort");
        outputs.push(this.emit(seq, []));
      }
    }
    this.pendingAborts.clear();
  }

  private buildBatch(items: { seq: Sequence; start: number; numTokens: number; sample: boolean }[]): StepBatch {
    const bs = this.blocks.blockSize;
    const rows = items.reduce((a, it) => a + it.numTokens, 0);
    const maxBlocks = Math.max(1, ...items.map((it) => it.seq.blockTable.length));
    const nSample = items.filter((it) => it.sample).length;
    const b: StepBatch = {
      tokens: new Int32Array(rows),
      positions: new Int32Array(rows),
      slots: new Int32Array(rows),
      seqOfRow: new Int32Array(rows),
      blockTables: new Int32Array(items.length * maxBlocks),
      maxBlocks,
      sampleRows: new Int32Array(nSample),
      sampling: {
        temperature: new Float32Array(nSample),
        topK: new Int32Array(nSample),
        topP: new Float32Array(nSample),
        seeds: new Uint32Array(2 * nSample),
        counters: new Int32Array(nSample),
      },
    };
    let row = 0;
    let si = 0;
    items.forEach((it, s) => {
      const seq = it.seq;
      b.blockTables.set(seq.blockTable, s * maxBlocks);
      for (let p = it.start; p < it.start + it.numTokens; p++, row++) {
        b.tokens[row] = seq.tokens[p];
        b.positions[row] = p;
        b.slots[row] = seq.blockTable[Math.floor(p / bs)] * bs + (p % bs);
        b.seqOfRow[row] = s;
      }
      if (it.sample) {
        const sp = seq.params;
        b.sampleRows[si] = row - 1;
        b.sampling.temperature[si] = sp.temperature;
        b.sampling.topK[si] = sp.topK;
        b.sampling.topP[si] = sp.topP;
        b.sampling.seeds[2 * si] = seq.seed[0];
        b.sampling.seeds[2 * si + 1] = seq.seed[1];
        b.sampling.counters[si] = seq.numOutput;
        si++;
      }
    });
    return b;
  }

  /** Incremental detokenization (prefix/read offsets, so partial UTF-8 sequences wait for more tokens). */
  private async detokenize(seqs: Sequence[]): Promise<void> {
    const tk = this.tokenizer;
    if (!tk || seqs.length === 0) return;
    const groups = new Map<boolean, Sequence[]>();
    for (const s of seqs) {
      const g = groups.get(s.params.skipSpecialTokens) ?? [];
      g.push(s);
      groups.set(s.params.skipSpecialTokens, g);
    }
    for (const [skip, group] of groups) {
      const prefixIds: number[][] = [];
      const fullIds: number[][] = [];
      for (const s of group) {
        const out = s.outputIds;
        prefixIds.push(out.slice(s.prefixOffset, s.readOffset));
        fullIds.push(out.slice(s.prefixOffset));
      }
      const [prefixText, fullText] = await Promise.all([tk.decodeBatch(prefixIds, skip), tk.decodeBatch(fullIds, skip)]);
      group.forEach((s, i) => {
        const full = fullText[i];
        if (full.length > prefixText[i].length && !full.endsWith("\uFFFD")) {
          s.text += full.slice(prefixText[i].length);
          s.prefixOffset = s.readOffset;
          s.readOffset = s.numOutput;
        }
      });
    }
  }

  private checkStop(seq: Sequence): void {
    const p = seq.params;
    const last = seq.tokens[seq.tokens.length - 1];
    if (!p.ignoreEos && this.defaults.eosTokenIds.includes(last)) {
      this.finish(seq, "stop", last);
      return;
    }
    if (p.stopTokenIds.includes(last)) {
      this.finish(seq, "stop", last);
      return;
    }
    if (p.stop.length) {
      const sent = this.sentText.get(seq.requestId) ?? 0;
      const maxLen = Math.max(...p.stop.map((s) => s.length));
      const from = Math.max(0, sent - maxLen + 1);
      let best = -1;
      let which = "";
      for (const s of p.stop) {
        const at = seq.text.indexOf(s, from);
        if (at >= 0 && (best < 0 || at < best)) {
          best = at;
          which = s;
        }
      }
      if (best >= 0) {
        seq.text = seq.text.slice(0, p.includeStopStrInOutput ? best + which.length : best);
        this.finish(seq, "stop", which);
        return;
      }
    }
    if (seq.numOutput >= p.maxTokens || seq.length >= this.maxModelLen) this.finish(seq, "length");
  }

  private finish(seq: Sequence, reason: FinishReason, stopReason?: string | number): void {
    seq.status = "finished";
    seq.finishReason = reason;
    seq.stopReason = stopReason;
    seq.timings.finished = performance.now();
    this.scheduler.remove(seq);
  }

  private emit(seq: Sequence, newIds: number[]): RequestOutput {
    const id = seq.requestId;
    const sentText = this.sentText.get(id) ?? 0;
    // While stop strings are pending, hold back text that could be the start of one.
    let visible = seq.text.length;
    if (!seq.isFinished && seq.params.stop.length) {
      const hold = Math.max(...seq.params.stop.map((s) => s.length)) - 1;
      visible = Math.max(sentText, seq.text.length - hold);
    }
    const text = seq.text.slice(0, Math.max(visible, 0));
    const tm = seq.timings;
    const n = seq.numOutput;
    const out: RequestOutput = {
      requestId: id,
      promptTokenIds: seq.promptIds,
      text,
      tokenIds: seq.outputIds,
      delta: { text: text.slice(Math.min(sentText, text.length)), tokenIds: newIds },
      finished: seq.isFinished,
      finishReason: seq.finishReason,
      stopReason: seq.stopReason,
      numCachedTokens: seq.numCachedTokens,
      metrics: {
        arrivalTime: tm.arrival,
        firstScheduledTime: tm.firstScheduled,
        firstTokenTime: tm.firstToken,
        finishedTime: tm.finished,
        ttftMs: tm.firstToken !== undefined ? tm.firstToken - tm.arrival : undefined,
        tpotMs: n > 1 && tm.firstToken !== undefined && tm.lastToken !== undefined ? (tm.lastToken - tm.firstToken) / (n - 1) : undefined,
        e2eMs: tm.finished !== undefined ? tm.finished - tm.arrival : undefined,
        numPreemptions: seq.numPreemptions,
      },
    };
    this.sentTokens.set(id, n);
    this.sentText.set(id, text.length);
    const cb = this.callbacks.get(id);
    if (seq.isFinished) {
      this.seqs.delete(id);
      this.callbacks.delete(id);
      this.sentTokens.delete(id);
      this.sentText.delete(id);
    }
    cb?.(out);
    return out;
  }
}
