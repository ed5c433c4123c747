/** What the engine reports for a request: after every step that changed it, and at the end. */
import type { FinishReason } from "./sequence.js";

export interface RequestMetrics {
  /** Milliseconds (performance.now() clock). */
  arrivalTime: number;
  firstScheduledTime?: number;
  firstTokenTime?: number;
  finishedTime?: number;
  /** Time to first token, from arrival. */
  ttftMs?: number;
  /** Mean time per output token after the first. */
  tpotMs?: number;
  e2eMs?: number;
  numPreemptions: number;
}

export interface RequestOutput {
  requestId: string;
  promptTokenIds: number[];
  /** Generated text so far (stop strings cut); empty when no tokenizer is attached. */
  text: string;
  tokenIds: number[];
  /** New since the previous output of this request. */
  delta: { text: string; tokenIds: number[] };
  finished: boolean;
  finishReason?: FinishReason;
  stopReason?: string | number;
  numCachedTokens: number;
  metrics: RequestMetrics;
}
