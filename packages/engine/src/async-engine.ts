/**
 * An asynchronous front for a server: requests are async iterators of outputs, the engine steps in
 * the background while any request is live, AbortSignal cancels, and back-pressure works per
 * request (a consumer that falls `highWaterMark` outputs behind pauses its sequence, which keeps
 * its KV blocks but is skipped by the scheduler until the consumer catches up) and at admission
 * (`maxQueued` waiting requests, beyond which generate() throws EngineBusyError).
 */
import { MarlinError } from "@marlin/core";
import type { LLMEngine } from "./core/engine.js";
import type { RequestOutput } from "./core/outputs.js";
import type { SamplingParams } from "./core/sampling-params.js";

export class EngineBusyError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_ENGINE_BUSY", message);
  }
}

export interface AsyncEngineOptions {
  /** Outputs a request may buffer before its sequence is paused (default 64). */
  highWaterMark?: number;
  /** Waiting requests beyond which new ones are refused (default: unlimited). */
  maxQueued?: number;
}

export interface GenerateOptions {
  requestId?: string;
  signal?: AbortSignal;
}

interface Stream {
  queue: RequestOutput[];
  wake?: () => void;
  done: boolean;
  error?: unknown;
}

export class AsyncEngine {
  readonly engine: LLMEngine;
  readonly highWaterMark: number;
  readonly maxQueued: number;
  private loop: Promise<void> | undefined;
  private failure: unknown;
  private readonly streams = new Map<string, Stream>();

  constructor(engine: LLMEngine, opts: AsyncEngineOptions = {}) {
    this.engine = engine;
    this.highWaterMark = opts.highWaterMark ?? 64;
    this.maxQueued = opts.maxQueued ?? Number.POSITIVE_INFINITY;
  }

  /** Streams a request's outputs (one per generated token, the last with finished = true). */
  async *generate(prompt: string | number[], params: SamplingParams = {}, opts: GenerateOptions = {}): AsyncGenerator<RequestOutput> {
    if (opts.signal?.aborted) return;
    if (this.engine.numWaiting >= this.maxQueued)
      throw new EngineBusyError(`${this.engine.numWaiting} requests are already waiting (maxQueued ${this.maxQueued})`);
    const stream: Stream = { queue: [], done: false };
    const id = await this.engine.addRequest(prompt, params, {
      requestId: opts.requestId,
      onOutput: (o) => {
        stream.queue.push(o);
        if (o.finished) stream.done = true;
        const seq = this.engine.sequence(o.requestId);
        if (seq && stream.queue.length >= this.highWaterMark) seq.paused = true;
        stream.wake?.();
      },
    });
    this.streams.set(id, stream);
    const onAbort = () => this.engine.abort(id);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    this.kick();
    try {
      while (true) {
        if (stream.queue.length === 0) {
          if (stream.done) return;
          if (stream.error) throw stream.error;
          await new Promise<void>((r) => {
            stream.wake = r;
          });
          stream.wake = undefined;
          continue;
        }
        const o = stream.queue.shift()!;
        const seq = this.engine.sequence(id);
        if (seq?.paused && stream.queue.length < this.highWaterMark / 2) {
          seq.paused = false;
          this.kick();
        }
        yield o;
        if (o.finished) return;
      }
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      this.streams.delete(id);
      // A consumer that stops early (break, throw) aborts its request.
      if (!stream.done) this.engine.abort(id);
    }
  }

  /** Aborts a request by id. */
  abort(requestId: string): boolean {
    const ok = this.engine.abort(requestId);
    this.kick();
    return ok;
  }

  /** Resolves when the background loop is idle. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      // Work may have arrived as the loop wound down.
      if (this.engine.hasUnfinished && this.hasRunnable()) this.kick();
    });
  }

  private hasRunnable(): boolean {
    return this.engine.numWaiting > 0 || this.engine.scheduler.running.some((s) => !s.paused);
  }

  private async run(): Promise<void> {
    try {
      while (this.engine.hasUnfinished && this.hasRunnable()) {
        await this.engine.step();
        // Let consumers and new requests in between steps.
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.failure = e;
      for (const s of this.streams.values()) {
        s.error = e;
        s.wake?.();
      }
    }
  }

  /** The error that stopped the background loop, if any. */
  get error(): unknown {
    return this.failure;
  }
}
