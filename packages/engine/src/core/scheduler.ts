/**
 * Continuous batching in the manner of vLLM: each step gives every running sequence its next
 * tokens (one for a decode, a chunk for a prefill) under a token budget, then admits waiting
 * sequences into what is left. When KV blocks run out, the newest running sequence is preempted
 * by recompute: its blocks are released and it waits again at the head of the queue with its
 * tokens so far (nothing is lost; cached blocks may even be revived on re-admission).
 */
import { InvalidArgumentError } from "@marlin/core";
import type { BlockManager } from "./block-manager.js";
import type { Sequence } from "./sequence.js";

export interface SchedulerConfig {
  /** Most sequences in the running batch. */
  maxNumSeqs: number;
  /** Token budget of one step (prefill chunks plus decodes). */
  maxNumBatchedTokens: number;
  /** Split long prefills across steps; when off a prompt is scheduled whole or not at all. */
  chunkedPrefill: boolean;
}

export interface ScheduledItem {
  seq: Sequence;
  /** First token position of this step's slice. */
  start: number;
  numTokens: number;
  /** The slice reaches the sequence's last token, so a new token is sampled after it. */
  sample: boolean;
}

export interface SchedulerOutput {
  items: ScheduledItem[];
  numBatchedTokens: number;
  preempted: Sequence[];
}

export class Scheduler {
  readonly config: SchedulerConfig;
  readonly blocks: BlockManager;
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  numPreemptions = 0;

  constructor(config: SchedulerConfig, blocks: BlockManager) {
    if (config.maxNumSeqs < 1) throw new InvalidArgumentError("maxNumSeqs must be >= 1");
    if (config.maxNumBatchedTokens < 1) throw new InvalidArgumentError("maxNumBatchedTokens must be >= 1");
    this.config = config;
    this.blocks = blocks;
  }

  add(seq: Sequence): void {
    seq.status = "waiting";
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Removes a sequence wherever it is and releases its blocks. */
  remove(seq: Sequence): void {
    const wi = this.waiting.indexOf(seq);
    if (wi >= 0) this.waiting.splice(wi, 1);
    const ri = this.running.indexOf(seq);
    if (ri >= 0) this.running.splice(ri, 1);
    if (seq.blockTable.length) this.blocks.release(seq);
  }

  private preempt(seq: Sequence): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.blocks.release(seq);
    seq.status = "waiting";
    seq.numPreemptions++;
    this.numPreemptions++;
    // Back to the head of the queue, in arrival order among the preempted.
    let at = 0;
    while (at < this.waiting.length && this.waiting[at].order < seq.order) at++;
    this.waiting.splice(at, 0, seq);
  }

  schedule(): SchedulerOutput {
    const items: ScheduledItem[] = [];
    const preempted: Sequence[] = [];
    let budget = this.config.maxNumBatchedTokens;
    const scheduled = new Set<Sequence>();

    // 1. Running sequences, oldest first. Victims of preemption are taken from the newest end, so
    // everything after index i is newer than the sequence being served.
    this.running.sort((a, b) => a.order - b.order);
    let i = 0;
    while (i < this.running.length && budget > 0) {
      const seq = this.running[i];
      const n = Math.min(seq.numUncomputed, budget);
      if (seq.paused || n <= 0 || (!this.config.chunkedPrefill && n < seq.numUncomputed)) {
        i++;
        continue;
      }
      let fits = this.blocks.grow(seq, seq.numComputed + n);
      while (!fits) {
        let victim: Sequence | undefined;
        for (let j = this.running.length - 1; j >= 0 && !victim; j--)
          if (!scheduled.has(this.running[j])) victim = this.running[j];
        if (!victim) break;
        this.preempt(victim);
        preempted.push(victim);
        if (victim === seq) break;
        fits = this.blocks.grow(seq, seq.numComputed + n);
      }
      if (!fits) continue; // seq itself was preempted; running[i] is now the next one (if any)
      items.push({ seq, start: seq.numComputed, numTokens: n, sample: seq.numComputed + n === seq.length });
      scheduled.add(seq);
      budget -= n;
      i++;
    }

    // 2. Waiting sequences, if nothing was preempted (vLLM does the same: no admission under pressure).
    if (preempted.length === 0) {
      while (this.waiting.length && budget > 0 && this.running.length < this.config.maxNumSeqs) {
        const seq = this.waiting[0];
        const cached = this.blocks.findCachedPrefix(seq);
        const computed = cached.blocks.length * this.blocks.blockSize;
        const remaining = seq.length - computed;
        if (!this.config.chunkedPrefill && remaining > budget) break;
        const n = Math.min(remaining, budget);
        if (!this.blocks.admit(seq, cached, computed + n)) break;
        this.waiting.shift();
        seq.status = "running";
        this.running.push(seq);
        items.push({ seq, start: seq.numComputed, numTokens: n, sample: seq.numComputed + n === seq.length });
        scheduled.add(seq);
        budget -= n;
      }
    }
    return { items, numBatchedTokens: this.config.maxNumBatchedTokens - budget, preempted };
  }
}
