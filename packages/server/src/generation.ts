/**
 * One API request's generation, shared by /v1/completions and /v1/chat/completions: every choice
 * (prompts x n) is admitted before anything is sent (so a full queue is a clean 429), then the
 * outputs are streamed as SSE chunks or gathered into one body. A client that disconnects aborts
 * its requests (the engine frees their KV blocks); a shutdown past its deadline ends them with a
 * 503 (an error event when streaming).
 */
import type { AsyncEngine, RequestOutput, RequestStream, SamplingParams } from "@marlin/engine";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiError, toApiError } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";
import { SseWriter } from "./sse.js";

export type Endpoint = "completion" | "chat";

export interface Job {
  endpoint: Endpoint;
  id: string;
  created: number;
  model: string;
  /** Token ids of each prompt. */
  prompts: number[][];
  n: number;
  /** Sampling of each prompt (maxTokens resolved); choice i of a prompt gets seed + i. */
  params: SamplingParams[];
  stream: boolean;
  includeUsage: boolean;
}

export interface GenerationContext {
  engine: AsyncEngine;
  metrics: ServerMetrics;
  drainTimeoutMs: number;
  /** True once a shutdown ran past its deadline and aborted what was left. */
  readonly abortedByShutdown: boolean;
  /** Called once the job is over (its log line may then be written). */
  settled(req: FastifyRequest, reply: FastifyReply): void;
}

/** What the request log line adds for a generation request. */
export interface GenerationLog {
  stream: boolean;
  n: number;
  promptTokens: number;
  completionTokens: number;
  finishReasons: string[];
  clientAborted: boolean;
  /** The job is over (every choice's request ended); the log line may be written. */
  settled: boolean;
}

interface Choice {
  index: number;
  prompt: number;
  stream: RequestStream;
}

async function admit(ctx: GenerationContext, job: Job, signal: AbortSignal): Promise<Choice[]> {
  const choices: Choice[] = [];
  try {
    for (let p = 0; p < job.prompts.length; p++) {
      for (let i = 0; i < job.n; i++) {
        const base = job.params[p];
        const params = base.seed !== undefined ? { ...base, seed: base.seed + i } : base;
        const index = p * job.n + i;
        const stream = await ctx.engine.add(job.prompts[p], params, { requestId: `${job.id}-${index}`, signal });
        choices.push({ index, prompt: p, stream });
      }
    }
  } catch (e) {
    // All or nothing: a refused choice takes back the ones already admitted.
    for (const c of choices) await c.stream.return();
    throw e;
  }
  return choices;
}

const finishReason = (o: RequestOutput) => (o.finishReason === "abort" ? "abort" : (o.finishReason ?? null));

function usage(job: Job, finals: (RequestOutput | undefined)[]) {
  const prompt = job.prompts.reduce((a, p) => a + p.length, 0);
  const completion = finals.reduce((a, o) => a + (o?.tokenIds.length ?? 0), 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function finalChoice(job: Job, index: number, o: RequestOutput) {
  const extra = { logprobs: null, finish_reason: finishReason(o), stop_reason: o.stopReason ?? null };
  return job.endpoint === "chat" ? { index, message: { role: "assistant", content: o.text }, ...extra } : { index, text: o.text, ...extra };
}

function chunkChoice(job: Job, index: number, text: string | undefined, finish: string | null, o?: RequestOutput) {
  const tail = { logprobs: null, finish_reason: finish, ...(finish ? { stop_reason: o?.stopReason ?? null } : {}) };
  if (job.endpoint === "chat") return { index, delta: text === undefined ? {} : { content: text }, ...tail };
  return { index, text: text ?? "", ...tail };
}

function envelope(job: Job, stream: boolean) {
  const object = job.endpoint === "chat" ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return { id: job.id, object, created: job.created, model: job.model };
}

function shutdownError(): ApiError {
  return new ApiError(503, "the server is shutting down; the request was stopped", { type: "service_unavailable", code: "shutting_down" });
}

/**
 * Runs the job and answers the request. Returns the body for non-streaming requests (Fastify
 * sends it); streaming responses are written here (the reply is hijacked).
 */
export async function runJob(ctx: GenerationContext, job: Job, req: FastifyRequest, reply: FastifyReply, log: GenerationLog): Promise<unknown> {
  try {
    return await generate(ctx, job, req, reply, log);
  } finally {
    ctx.settled(req, reply);
  }
}

async function generate(ctx: GenerationContext, job: Job, req: FastifyRequest, reply: FastifyReply, log: GenerationLog): Promise<unknown> {
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) ac.abort();
  };
  res.on("close", onClose);
  log.stream = job.stream;
  log.n = job.n;
  log.promptTokens = job.prompts.reduce((a, p) => a + p.length, 0);
  const choices = await admit(ctx, job, ac.signal);
  const finals: (RequestOutput | undefined)[] = new Array(choices.length);
  // Every request's end is counted, also those the consumer stopped reading (hang-ups, errors).
  for (const c of choices) void c.stream.ended.then((o) => o && ctx.metrics.observeFinished(o));
  const record = (c: Choice, o: RequestOutput) => {
    finals[c.index] = o;
  };
  const summarize = async () => {
    const ended = await Promise.all(choices.map((c) => c.stream.ended));
    ended.forEach((o, i) => {
      finals[choices[i].index] ??= o;
    });
    log.completionTokens = finals.reduce((a, o) => a + (o?.tokenIds.length ?? 0), 0);
    log.finishReasons = finals.map((o) => o?.finishReason ?? "none");
    log.clientAborted = ac.signal.aborted;
  };

  if (!job.stream) {
    const settled = await Promise.allSettled(
      choices.map(async (c) => {
        for await (const o of c.stream) if (o.finished) record(c, o);
      }),
    );
    await summarize();
    const failed = settled.find((s) => s.status === "rejected");
    if (ac.signal.aborted) {
      // The client is gone: nothing to send. 499 as nginx logs it.
      reply.hijack();
      res.off("close", onClose);
      return undefined;
    }
    if (failed) throw (failed as PromiseRejectedResult).reason;
    if (ctx.abortedByShutdown && finals.some((o) => o?.finishReason === "abort")) throw shutdownError();
    return { ...envelope(job, false), choices: choices.map((c) => finalChoice(job, c.index, finals[c.index]!)), usage: usage(job, finals) };
  }

  reply.hijack();
  const sse = new SseWriter(res, ctx.drainTimeoutMs, { "x-request-id": String(req.id) });
  const head = envelope(job, true);
  const usageField = job.includeUsage ? { usage: null } : {};
  let failure: unknown;
  await Promise.all(
    choices.map(async (c) => {
      let first = true;
      try {
        for await (const o of c.stream) {
          if (first && job.endpoint === "chat") {
            const role = { index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null };
            if (!(await sse.send({ ...head, choices: [role], ...usageField }))) break;
          }
          first = false;
          if (o.finished) record(c, o);
          const fin = o.finished && o.finishReason !== "abort" ? finishReason(o) : null;
          // One chunk per token, also when its text is held back (a partial character, a possible
          // stop string), so clients can time every token.
          if (o.delta.tokenIds.length > 0 || o.delta.text || fin) {
            // A chat chunk that only finishes carries an empty delta, as OpenAI's do.
            const text = o.delta.text || (job.endpoint === "chat" && fin ? undefined : "");
            if (!(await sse.send({ ...head, choices: [chunkChoice(job, c.index, text, fin, o)], ...usageField }))) break; // the client left: return() aborts
          }
        }
      } catch (e) {
        failure ??= e;
      }
    }),
  );
  await summarize();
  res.off("close", onClose);
  if (!sse.closed) {
    if (failure !== undefined || (ctx.abortedByShutdown && finals.some((o) => o?.finishReason === "abort"))) {
      const err = failure !== undefined ? toApiError(failure) : shutdownError();
      await sse.send(err.body);
      req.log.warn({ err: err.message }, "stream ended by an error");
    } else if (job.includeUsage) {
      await sse.send({ ...head, choices: [], usage: usage(job, finals) });
    }
    await sse.send("[DONE]");
    sse.end();
  }
  return undefined;
}
