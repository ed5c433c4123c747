/** A request's tokens and state as it moves through the scheduler. */
import type { ResolvedSamplingParams } from "./sampling-params.js";

export type SequenceStatus = "waiting" | "running" | "finished";
export type FinishReason = "stop" | "length" | "abort";

export interface SequenceTimings {
  arrival: number;
  firstScheduled?: number;
  firstToken?: number;
  lastToken?: number;
  finished?: number;
}

export class Sequence {
  readonly requestId: string;
  /** Arrival order; older sequences are scheduled first and preempted last. */
  readonly order: number;
  readonly promptLength: number;
  /** Prompt followed by the generated tokens. */
  readonly tokens: number[];
  readonly params: ResolvedSamplingParams;
  /** 64-bit sampling seed as [low, high] 32-bit words. */
  readonly seed: [number, number];
  status: SequenceStatus = "waiting";
  finishReason?: FinishReason;
  /** The stop string or token id that ended the request. */
  stopReason?: string | number;
  /** Tokens whose keys and values are in the cache. */
  numComputed = 0;
  /** Prompt tokens served from the prefix cache (at the last admission). */
  numCachedTokens = 0;
  /** Physical KV blocks, in order. */
  blockTable: number[] = [];
  /** Chained hashes of the full blocks whose contents are computed (prefix caching). */
  blockHashes: string[] = [];
  numPreemptions = 0;
  /** Set by a consumer that cannot keep up: the scheduler skips the sequence until cleared. */
  paused = false;
  readonly timings: SequenceTimings;
  /** Detokenized output text so far (stop strings cut). */
  text = "";
  /** Incremental detokenizer offsets into the output ids. */
  prefixOffset = 0;
  readOffset = 0;

  constructor(requestId: string, order: number, prompt: number[], params: ResolvedSamplingParams, seed: [number, number], now: number) {
    this.requestId = requestId;
    this.order = order;
    this.promptLength = prompt.length;
    this.tokens = prompt.slice();
    this.params = params;
    this.seed = seed;
    this.timings = { arrival: now };
  }

  get length(): number {
    return this.tokens.length;
  }
  get numOutput(): number {
    return this.tokens.length - this.promptLength;
  }
  get outputIds(): number[] {
    return this.tokens.slice(this.promptLength);
  }
  get promptIds(): number[] {
    return this.tokens.slice(0, this.promptLength);
  }
  get isFinished(): boolean {
    return this.status === "finished";
  }
  /** Tokens not yet in the cache (a prefill chunk's worth or a decode step's single token). */
  get numUncomputed(): number {
    return this.tokens.length - this.numComputed;
  }
}
