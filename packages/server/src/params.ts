/**
 * Request bodies of /v1/completions and /v1/chat/completions, checked field by field before any
 * tokenizing or engine work. A field the engine cannot honour (penalties, logprobs, tools...) is a
 * 400 naming it, never silently dropped; unknown fields are refused the same way.
 */
import type { GenerationDefaults, SamplingParams } from "@marlin/engine";
import { badParam, unsupportedParam } from "./errors.js";

export interface CommonRequest {
  model: string | undefined;
  n: number;
  stream: boolean;
  includeUsage: boolean;
  /** undefined: the endpoint's default (16 for completions, the rest of the context for chat). */
  maxTokens: number | undefined;
  /** Sampling for choice 0; choice i gets seed + i when a seed is given. */
  sampling: Omit<SamplingParams, "maxTokens">;
}

export interface CompletionRequest extends CommonRequest {
  prompts: (string | number[])[];
}

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

export interface ChatRequest extends CommonRequest {
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
}

export interface ParseLimits {
  maxN: number;
  maxPrompts: number;
  defaults: GenerationDefaults;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const absent = (v: unknown) => v === undefined || v === null;

/** Reads fields once each and remembers which were read, so the rest can be refused. */
class Fields {
  private readonly seen = new Set<string>();
  constructor(private readonly raw: Record<string, unknown>) {}

  get(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  number(key: string, rule: { integer?: boolean; min?: number; max?: number; above?: number }): number | undefined {
    const v = this.get(key);
    if (absent(v)) return undefined;
    const kind = rule.integer ? "an integer" : "a number";
    if (typeof v !== "number" || !Number.isFinite(v) || (rule.integer && !Number.isSafeInteger(v))) throw badParam(key, `${key} must be ${kind}, got ${JSON.stringify(v)}`, "invalid_type");
    if (rule.min !== undefined && v < rule.min) throw badParam(key, `${key} must be >= ${rule.min}, got ${v}`);
    if (rule.above !== undefined && v <= rule.above) throw badParam(key, `${key} must be > ${rule.above}, got ${v}`);
    if (rule.max !== undefined && v > rule.max) throw badParam(key, `${key} must be <= ${rule.max}, got ${v}`);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (absent(v)) return undefined;
    if (typeof v !== "boolean") throw badParam(key, `${key} must be a boolean, got ${JSON.stringify(v)}`, "invalid_type");
    return v;
  }

  /** A field accepted only at its neutral value (what the engine does anyway). */
  neutral(key: string, ok: (v: unknown) => boolean, why: string): void {
    const v = this.get(key);
    if (!absent(v) && !ok(v)) throw unsupportedParam(key, why);
  }

  refuseRest(): void {
    for (const k of Object.keys(this.raw)) if (!this.seen.has(k)) throw unsupportedParam(k, "is not a supported parameter of this endpoint");
  }
}

function parseStop(f: Fields): string[] | undefined {
  const v = f.get("stop");
  if (absent(v)) return undefined;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s.length === 0))
    throw badParam("stop", "stop must be a non-empty string or an array of non-empty strings", "invalid_type");
  if (list.length > 16) throw badParam("stop", `stop takes at most 16 strings, got ${list.length}`);
  return list as string[];
}

function parseCommon(body: unknown, limits: ParseLimits, chat: boolean): { f: Fields; common: CommonRequest } {
  if (!isObj(body)) throw badParam("body", "the request body must be a JSON object", "invalid_type");
  const f = new Fields(body);
  const model = f.get("model");
  if (!absent(model) && typeof model !== "string") throw badParam("model", "model must be a string", "invalid_type");
  const n = f.number("n", { integer: true, min: 1, max: limits.maxN }) ?? 1;
  const stream = f.bool("stream") ?? false;
  const so = f.get("stream_options");
  let includeUsage = false;
  if (!absent(so)) {
    if (!stream) throw badParam("stream_options", "stream_options is only allowed when stream is true");
    if (!isObj(so)) throw badParam("stream_options", "stream_options must be an object", "invalid_type");
    for (const k of Object.keys(so)) if (k !== "include_usage") throw unsupportedParam(`stream_options.${k}`);
    if (!absent(so.include_usage) && typeof so.include_usage !== "boolean") throw badParam("stream_options.include_usage", "include_usage must be a boolean", "invalid_type");
    includeUsage = so.include_usage === true;
  }
  let maxTokens = f.number("max_tokens", { integer: true, min: 1 });
  if (chat) {
    const mct = f.number("max_completion_tokens", { integer: true, min: 1 });
    if (mct !== undefined && maxTokens !== undefined && mct !== maxTokens) throw badParam("max_completion_tokens", "max_tokens and max_completion_tokens disagree");
    maxTokens ??= mct;
  }
  const d = limits.defaults;
  const temperature = f.number("temperature", { min: 0 }) ?? d.temperature ?? 1;
  const topP = f.number("top_p", { above: 0, max: 1 }) ?? d.topP ?? 1;
  const topK = f.number("top_k", { integer: true, min: -1 }) ?? d.topK ?? 0;
  const seed = f.number("seed", { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER - (n - 1) });
  const stop = parseStop(f);
  const stopTokenIds = f.get("stop_token_ids");
  if (!absent(stopTokenIds) && (!Array.isArray(stopTokenIds) || stopTokenIds.some((t) => !Number.isSafeInteger(t) || t < 0)))
    throw badParam("stop_token_ids", "stop_token_ids must be an array of token ids", "invalid_type");
  const ignoreEos = f.bool("ignore_eos");
  const includeStop = f.bool("include_stop_str_in_output");
  const skipSpecial = f.bool("skip_special_tokens");
  const zero = (v: unknown) => v === 0;
  f.neutral("presence_penalty", zero, "is not implemented by the engine (only 0 is accepted)");
  f.neutral("frequency_penalty", zero, "is not implemented by the engine (only 0 is accepted)");
  f.neutral("repetition_penalty", (v) => v === 1, "is not implemented by the engine (only 1 is accepted)");
  f.neutral("min_tokens", zero, "is not implemented by the engine (only 0 is accepted)");
  f.neutral("logit_bias", (v) => isObj(v) && Object.keys(v).length === 0, "is not implemented by the engine");
  f.get("user"); // an opaque end-user id: nothing to do with it
  const common: CommonRequest = {
    model: absent(model) ? undefined : (model as string),
    n,
    stream,
    includeUsage,
    maxTokens,
    sampling: {
      temperature,
      topP,
      topK,
      ...(seed !== undefined ? { seed } : {}),
      ...(stop ? { stop } : {}),
      ...(absent(stopTokenIds) ? {} : { stopTokenIds: stopTokenIds as number[] }),
      ...(ignoreEos !== undefined ? { ignoreEos } : {}),
      ...(includeStop !== undefined ? { includeStopStrInOutput: includeStop } : {}),
      ...(skipSpecial !== undefined ? { skipSpecialTokens: skipSpecial } : {}),
    },
  };
  return { f, common };
}

function parsePrompts(v: unknown, maxPrompts: number): (string | number[])[] {
  const bad = () => badParam("prompt", "prompt must be a string, an array of strings, an array of token ids or an array of such arrays", "invalid_type");
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.length === 0) throw absent(v) ? badParam("prompt", "prompt is required", "missing_required_parameter") : bad();
  let list: (string | number[])[];
  if (v.every((x) => typeof x === "number")) list = [v as number[]];
  else if (v.every((x) => typeof x === "string")) list = v as string[];
  else if (v.every((x) => Array.isArray(x) && x.every((t) => typeof t === "number"))) list = v as number[][];
  else throw bad();
  if (list.length > maxPrompts) throw badParam("prompt", `at most ${maxPrompts} prompts per request, got ${list.length}`);
  for (const p of list) {
    if (p.length === 0) throw badParam("prompt", "a prompt is empty");
    if (Array.isArray(p) && p.some((t) => !Number.isSafeInteger(t) || t < 0)) throw badParam("prompt", "token ids must be non-negative integers");
  }
  return list;
}

export function parseCompletionRequest(body: unknown, limits: ParseLimits): CompletionRequest {
  const { f, common } = parseCommon(body, limits, false);
  const prompts = parsePrompts(f.get("prompt"), limits.maxPrompts);
  const bestOf = f.number("best_of", { integer: true, min: 1 });
  if (bestOf !== undefined && bestOf !== common.n) throw unsupportedParam("best_of", "is not supported (only best_of = n)");
  f.neutral("echo", (v) => v === false, "is not supported by this server");
  f.neutral("logprobs", () => false, "is not supported by this server");
  f.neutral("suffix", (v) => v === "", "is not supported by this server");
  f.refuseRest();
  return { ...common, prompts };
}

const ROLES = new Set(["system", "developer", "user", "assistant"]);

function parseMessages(v: unknown): ChatMessage[] {
  if (absent(v)) throw badParam("messages", "messages is required", "missing_required_parameter");
  if (!Array.isArray(v) || v.length === 0) throw badParam("messages", "messages must be a non-empty array", "invalid_type");
  return v.map((m, i) => {
    const at = `messages[${i}]`;
    if (!isObj(m)) throw badParam(at, `${at} must be an object`, "invalid_type");
    for (const k of Object.keys(m))
      if (k !== "role" && k !== "content" && k !== "name") throw unsupportedParam(`${at}.${k}`, "is not supported by this server (no tool calls)");
    if (typeof m.role !== "string" || !ROLES.has(m.role))
      throw badParam(`${at}.role`, `${at}.role must be one of ${[...ROLES].join(", ")}, got ${JSON.stringify(m.role)}`);
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (m.content === null && m.role === "assistant") content = "";
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part, j) => {
          if (!isObj(part) || part.type !== "text" || typeof part.text !== "string")
            throw unsupportedParam(`${at}.content[${j}]`, "must be a text part ({type: \"text\", text}); other content types are not supported");
          return part.text;
        })
        .join("");
    } else throw badParam(`${at}.content`, `${at}.content must be a string or an array of text parts`, "invalid_type");
    if (!absent(m.name) && typeof m.name !== "string") throw badParam(`${at}.name`, `${at}.name must be a string`, "invalid_type");
    return { role: m.role, content, ...(typeof m.name === "string" ? { name: m.name } : {}) };
  });
}

export function parseChatRequest(body: unknown, limits: ParseLimits): ChatRequest {
  const { f, common } = parseCommon(body, limits, true);
  const messages = parseMessages(f.get("messages"));
  const addGenerationPrompt = f.bool("add_generation_prompt") ?? true;
  f.neutral("logprobs", (v) => v === false, "is not supported by this server");
  f.neutral("top_logprobs", () => false, "is not supported by this server");
  for (const k of ["tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"]) f.neutral(k, () => false, "is not supported by this server (no tool calls)");
  f.neutral("response_format", (v) => isObj(v) && v.type === "text", "is not supported by this server (text only)");
  f.refuseRest();
  return { ...common, messages, addGenerationPrompt };
}
