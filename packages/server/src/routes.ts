/**
 * The OpenAI routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions. Each checks
 * its body, the model name and the context length before anything reaches the engine.
 */
import { randomUUID } from "node:crypto";
import type { AsyncEngine, GenerationDefaults, SamplingParams, Tokenizer } from "@marlin/engine";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ChatTemplate } from "./chat-template.js";
import { ApiError, badParam } from "./errors.js";
import { type GenerationContext, type GenerationLog, type Job, runJob } from "./generation.js";
import { type CommonRequest, type ParseLimits, parseChatRequest, parseCompletionRequest } from "./params.js";

export interface RouteContext extends GenerationContext {
  modelName: string;
  modelRoot: string;
  created: number;
  tokenizer: Tokenizer | undefined;
  chatTemplate: ChatTemplate | undefined;
  defaults: GenerationDefaults;
  maxN: number;
  maxPrompts: number;
  /** Attaches the generation fields to the request's log line. */
  logOf(req: FastifyRequest): GenerationLog;
}

/** OpenAI's default for /v1/completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

function checkModel(ctx: RouteContext, model: string | undefined): void {
  if (model !== undefined && model !== ctx.modelName)
    throw new ApiError(404, `The model \`${model}\` does not exist (this server serves \`${ctx.modelName}\`)`, { param: "model", code: "model_not_found" });
}

/** Checks prompt + completion against the context; a default max_tokens shrinks to fit, a given one never does. */
function resolveMaxTokens(engine: AsyncEngine, promptLen: number, given: number | undefined, dflt: number | undefined, param: string): number {
  const M = engine.engine.maxModelLen;
  if (promptLen >= M)
    throw new ApiError(400, `This model's maximum context length is ${M} tokens, but the prompt has ${promptLen} tokens`, { param, code: "context_length_exceeded" });
  if (given !== undefined) {
    if (promptLen + given > M)
      throw new ApiError(400, `This model's maximum context length is ${M} tokens. However, you requested ${promptLen + given} tokens (${promptLen} in the prompt, ${given} for the completion)`, { param: "max_tokens", code: "context_length_exceeded" });
    return given;
  }
  return Math.min(dflt ?? M - promptLen, M - promptLen);
}

function checkVocab(ctx: RouteContext, ids: number[], param: string): void {
  const V = ctx.engine.engine.runner.config.vocabSize;
  if (ids.some((t) => t >= V)) throw badParam(param, `token ids must be below the vocabulary size ${V}`);
}

function checkQueueRoom(ctx: RouteContext, count: number): void {
  const max = ctx.engine.maxQueued;
  if (count > max) throw badParam("n", `this request needs ${count} sequences (prompts x n), more than the server queues (${max})`);
}

function needTokenizer(ctx: RouteContext, param: string): Tokenizer {
  if (!ctx.tokenizer) throw badParam(param, "this model has no tokenizer: send token ids");
  return ctx.tokenizer;
}

function makeJob(ctx: RouteContext, r: CommonRequest, endpoint: Job["endpoint"], prompts: number[][], maxTokens: number[]): Job {
  const params: SamplingParams[] = maxTokens.map((m) => ({ ...r.sampling, maxTokens: m }));
  return {
    endpoint,
    id: `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`,
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelName,
    prompts,
    n: r.n,
    params,
    stream: r.stream,
    includeUsage: r.includeUsage,
  };
}

function limits(ctx: RouteContext): ParseLimits {
  return { maxN: ctx.maxN, maxPrompts: ctx.maxPrompts, defaults: ctx.defaults };
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const modelCard = () => ({
    id: ctx.modelName,
    object: "model",
    created: ctx.created,
    owned_by: "marlin",
    root: ctx.modelRoot,
    max_model_len: ctx.engine.engine.maxModelLen,
    vocab_size: ctx.engine.engine.runner.config.vocabSize,
  });
  app.get("/v1/models", async () => ({ object: "list", data: [modelCard()] }));
  app.get<{ Params: { model: string } }>("/v1/models/:model", async (req) => {
    checkModel(ctx, req.params.model);
    return modelCard();
  });

  app.post("/v1/completions", async (req: FastifyRequest, reply: FastifyReply) => {
    const r = parseCompletionRequest(req.body, limits(ctx));
    checkModel(ctx, r.model);
    checkQueueRoom(ctx, r.prompts.length * r.n);
    const prompts: number[][] = [];
    for (const p of r.prompts) {
      const ids = typeof p === "string" ? await needTokenizer(ctx, "prompt").encode(p, true) : p;
      checkVocab(ctx, ids, "prompt");
      prompts.push(ids);
    }
    const maxTokens = prompts.map((ids) => resolveMaxTokens(ctx.engine, ids.length, r.maxTokens, COMPLETION_DEFAULT_MAX_TOKENS, "prompt"));
    return runJob(ctx, makeJob(ctx, r, "completion", prompts, maxTokens), req, reply, ctx.logOf(req));
  });

  app.post("/v1/chat/completions", async (req: FastifyRequest, reply: FastifyReply) => {
    const r = parseChatRequest(req.body, limits(ctx));
    checkModel(ctx, r.model);
    checkQueueRoom(ctx, r.n);
    if (!ctx.chatTemplate)
      throw new ApiError(400, "this model has no chat template (tokenizer_config.json has no chat_template); start the server with a chat template (marlin serve --chat-template FILE) or use /v1/completions", {
        param: "messages",
        code: "no_chat_template",
      });
    const text = ctx.chatTemplate.render(r.messages, r.addGenerationPrompt);
    // The template writes the special tokens (BOS) itself.
    const ids = await needTokenizer(ctx, "messages").encode(text, false);
    if (ids.length === 0) throw badParam("messages", "the messages render to an empty prompt");
    const maxTokens = resolveMaxTokens(ctx.engine, ids.length, r.maxTokens, undefined, "messages");
    return runJob(ctx, makeJob(ctx, r, "chat", [ids], [maxTokens]), req, reply, ctx.logOf(req));
  });
}
