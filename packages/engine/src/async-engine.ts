/**
 * An asynchronous front for a server: requests are async iterators of outputs, the engine steps in
 * the background while any request is live, AbortSignal cancels, and back-pressure works per
 * request (a consumer that falls `highWaterMark` outputs behind pauses its sequence, which keeps
 * its KV blocks but is skipped by the scheduler until the consumer catches up) and at admission
 * (`maxQueued` waiting requests, counting text prompts still being tokenized, beyond which add()
 * and generate() throw EngineBusyError).
 *
 * Abandoned streams: a stream whose consumer neither reads (next()) nor closes it (return()) for
 * `idleTimeoutMs` (default 60 s) is reclaimed: its request is aborted, its KV blocks return to the
 * free list, and a later next() throws StreamReclaimedError. A consumer blocked in next() waiting
 * for the engine is never idle.
 */
import { InvalidArgumentError, MarlinError } from "@marlin/core";
import type { LLMEngine } from "./core/engine.js";
import type { RequestOutput } from "./core/outputs.js";
import { resolveSamplingParams, type SamplingParams } from "./core/sampling-params.js";

export class EngineBusyError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_ENGINE_BUSY", message);
  }
}

/** The background loop failed (e.g. a device error): the engine takes no more requests. */
export class EngineDeadError extends MarlinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_MARLIN_ENGINE_DEAD", message, options);
  }
}

/** A request's AbortSignal fired before the request reached the engine (e.g. while it was tokenized). */
export class RequestAbortedError extends MarlinError {
  constructor(message = "the request was aborted before it started") {
    super("ERR_MARLIN_ABORTED", message);
  }
}

/** The stream was idle past its deadline and was reclaimed (its request aborted, its blocks freed). */
export class StreamReclaimedError extends MarlinError {
  constructor(requestId: string, idleMs: number) {
    super("ERR_MARLIN_STREAM_RECLAIMED", `stream ${requestId} was not read for ${idleMs} ms and was reclaimed (request aborted)`);
  }
}

export interface AsyncEngineOptions {
  /** Outputs a request may buffer before its sequence is paused (default 64). */
  highWaterMark?: number;
  /** Waiting requests (queued in the engine or being tokenized) beyond which new ones are refused (default: unlimited). */
  maxQueued?: number;
  /** A stream not read nor closed for this long is reclaimed (default 60000 ms; Infinity: never). */
  idleTimeoutMs?: number;
}

export interface GenerateOptions {
  requestId?: string;
  signal?: AbortSignal;
}

const DEFAULT_IDLE_MS = 60_000;

/**
 * One request's outputs as an async iterator. Reading to the end, or return() (a `for await` that
 * breaks or throws), releases it; a stream left unread past the idle deadline is reclaimed.
 */
export class RequestStream implements AsyncIterableIterator<RequestOutput> {
  readonly requestId: string;
  private readonly queue: RequestOutput[] = [];
  private wake?: () => void;
  /** The engine sent the final output (it may still sit in the queue). */
  private finished = false;
  /** The consumer's side is over: read to the end, returned, failed or reclaimed. */
  private closed = false;
  private failure: unknown;
  private reclaimed = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private resolveEnded!: (o: RequestOutput | undefined) => void;
  /**
   * The request's final output, whether or not the consumer reads it (an abort after return() or a
   * reclaim included); undefined if the engine loop failed first.
   */
  readonly ended: Promise<RequestOutput | undefined> = new Promise((r) => {
    this.resolveEnded = r;
  });

  /** @internal Created by AsyncEngine.add(). */
  constructor(
    private readonly owner: AsyncEngine,
    requestId: string,
    private readonly onClose: () => void,
    private readonly onEnd: () => void,
  ) {
    this.requestId = requestId;
  }

  /** Outputs waiting for the consumer. */
  get buffered(): number {
    return this.queue.length;
  }

  /** @internal The engine's output callback. */
  push(o: RequestOutput): void {
    if (o.finished) this.settle(o);
    if (this.closed) return;
    this.queue.push(o);
    if (o.finished) this.finished = true;
    const seq = this.owner.engine.sequence(this.requestId);
    if (seq && this.queue.length >= this.owner.highWaterMark) seq.paused = true;
    this.wake?.();
  }

  /** @internal The background loop died. */
  fail(e: unknown): void {
    this.settle(undefined);
    if (this.closed) return;
    this.failure = e;
    this.wake?.();
  }

  private settle(o: RequestOutput | undefined): void {
    this.resolveEnded(o);
    this.onEnd();
  }

  /** @internal (Re)starts the idle deadline: the consumer holds control until its next next(). */
  armIdle(): void {
    this.disarmIdle();
    const ms = this.owner.idleTimeoutMs;
    if (this.closed || !Number.isFinite(ms)) return;
    this.timer = setTimeout(() => this.reclaim(), ms);
    this.timer.unref?.();
  }

  private disarmIdle(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private reclaim(): void {
    if (this.closed) return;
    this.reclaimed = true;
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.disarmIdle();
    this.queue.length = 0;
    this.onClose();
    if (!this.finished) this.owner.abort(this.requestId);
  }

  next(): Promise<IteratorResult<RequestOutput>> {
    // Calls are served in order, one at a time.
    const p = this.chain.then(() => this.pull());
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async pull(): Promise<IteratorResult<RequestOutput>> {
    this.disarmIdle();
    while (true) {
      if (this.reclaimed) throw new StreamReclaimedError(this.requestId, this.owner.idleTimeoutMs);
      if (this.closed) return { done: true, value: undefined };
      if (this.queue.length > 0) {
        const o = this.queue.shift()!;
        const seq = this.owner.engine.sequence(this.requestId);
        if (seq?.paused && this.queue.length < this.owner.highWaterMark / 2) {
          seq.paused = false;
          this.owner.resume();
        }
        if (o.finished) this.close();
        else this.armIdle();
        return { done: false, value: o };
      }
      if (this.failure !== undefined) {
        const e = this.failure;
        this.close();
        throw e;
      }
      if (this.finished) {
        this.close();
        return { done: true, value: undefined };
      }
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
  }

  /** Stops reading: aborts the request if it is still running. */
  async return(): Promise<IteratorResult<RequestOutput>> {
    this.close();
    this.wake?.();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class AsyncEngine {
  readonly engine: LLMEngine;
  readonly highWaterMark: number;
  readonly maxQueued: number;
  readonly idleTimeoutMs: number;
  private loop: Promise<void> | undefined;
  private failure: unknown;
  private readonly streams = new Map<string, RequestStream>();
  /** Text prompts being tokenized: they hold a place in the queue. */
  private tokenizing = 0;
  /** Caller-given ids of requests being tokenized, and those of them aborted meanwhile. */
  private readonly pendingIds = new Set<string>();
  private readonly abortedPending = new Set<string>();

  constructor(engine: LLMEngine, opts: AsyncEngineOptions = {}) {
    this.engine = engine;
    this.highWaterMark = opts.highWaterMark ?? 64;
    this.maxQueued = opts.maxQueued ?? Number.POSITIVE_INFINITY;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    if (!(this.highWaterMark >= 1)) throw new InvalidArgumentError(`highWaterMark must be >= 1, got ${opts.highWaterMark}`);
    if (!(this.maxQueued >= 0)) throw new InvalidArgumentError(`maxQueued must be >= 0, got ${opts.maxQueued}`);
    if (!(this.idleTimeoutMs > 0)) throw new InvalidArgumentError(`idleTimeoutMs must be > 0 (Infinity: never), got ${opts.idleTimeoutMs}`);
  }

  /** Waiting requests: queued in the engine plus text prompts being tokenized. */
  get numQueued(): number {
    return this.engine.numWaiting + this.tokenizing;
  }

  /** Streams whose request has not ended yet. */
  get numStreams(): number {
    return this.streams.size;
  }

  /** The error that stopped the background loop, if any. */
  get error(): unknown {
    return this.failure;
  }

  private checkAdmission(): void {
    if (this.failure !== undefined) throw new EngineDeadError(`the engine stopped: ${errorText(this.failure)}`, { cause: this.failure });
    if (this.numQueued >= this.maxQueued) throw new EngineBusyError(`${this.numQueued} requests are already waiting (maxQueued ${this.maxQueued})`);
  }

  /**
   * Admits a request and returns its stream. Throws EngineBusyError when the queue is full,
   * RequestAbortedError when `signal` fires before the request reaches the engine, EngineDeadError
   * after the loop failed, and the engine's own errors for bad prompts or parameters.
   */
  async add(prompt: string | number[], params: SamplingParams = {}, opts: GenerateOptions = {}): Promise<RequestStream> {
    const { signal, requestId } = opts;
    if (signal?.aborted) throw new RequestAbortedError();
    resolveSamplingParams(params); // bad parameters fail before any tokenizing
    this.checkAdmission();
    let input: string | number[] = prompt;
    const tk = this.engine.tokenizer;
    if (typeof prompt === "string" && tk) {
      // The place is held across the await, so concurrent text prompts see each other.
      this.tokenizing++;
      if (requestId !== undefined) this.pendingIds.add(requestId);
      try {
        input = await tk.encode(prompt);
      } finally {
        this.tokenizing--;
        if (requestId !== undefined) this.pendingIds.delete(requestId);
      }
      const abortedById = requestId !== undefined && this.abortedPending.delete(requestId);
      if (signal?.aborted || abortedById) throw new RequestAbortedError("the request was aborted while its prompt was tokenized");
      this.checkAdmission();
    }
    let stream: RequestStream | undefined;
    const early: RequestOutput[] = [];
    // With token ids (or no tokenizer) addRequest adds synchronously; outputs can only arrive later.
    const id = await this.engine.addRequest(input, params, {
      requestId,
      onOutput: (o) => (stream ? stream.push(o) : early.push(o)),
    });
    const onAbort = () => this.abort(id);
    // A stream leaves the map when its request has ended, not when its consumer stops reading.
    const s = new RequestStream(
      this,
      id,
      () => signal?.removeEventListener("abort", onAbort),
      () => this.streams.delete(id),
    );
    stream = s;
    this.streams.set(id, s);
    for (const o of early) s.push(o);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    s.armIdle(); // a stream nobody ever reads is reclaimed too
    this.kick();
    return s;
  }

  /** Streams a request's outputs (one per generated token, the last with finished = true). */
  async *generate(prompt: string | number[], params: SamplingParams = {}, opts: GenerateOptions = {}): AsyncGenerator<RequestOutput> {
    let s: RequestStream;
    try {
      s = await this.add(prompt, params, opts);
    } catch (e) {
      if (e instanceof RequestAbortedError) return;
      throw e;
    }
    try {
      yield* s;
    } finally {
      await s.return();
    }
  }

  /** Aborts a request by id (also one whose prompt is still being tokenized). */
  abort(requestId: string): boolean {
    if (this.pendingIds.has(requestId)) {
      this.abortedPending.add(requestId);
      return true;
    }
    const ok = this.engine.abort(requestId);
    this.kick();
    return ok;
  }

  /** Aborts every live request (graceful shutdown's last step); returns how many. */
  abortAll(): number {
    let n = 0;
    for (const id of this.pendingIds) {
      this.abortedPending.add(id);
      n++;
    }
    for (const id of [...this.streams.keys()]) if (this.abort(id)) n++;
    return n;
  }

  /** Resolves when the background loop is idle. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** @internal A paused sequence was resumed by its consumer. */
  resume(): void {
    this.kick();
  }

  private kick(): void {
    if (this.loop || this.failure !== undefined) return;
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
      // Start on a later turn, so add() returns before the first forward pass.
      await new Promise((r) => setImmediate(r));
      while (this.engine.hasUnfinished && this.hasRunnable()) {
        await this.engine.step();
        // Let consumers and new requests in between steps.
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.failure = e;
      const dead = new EngineDeadError(`the engine stopped: ${errorText(e)}`, { cause: e });
      for (const s of this.streams.values()) s.fail(dead);
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
