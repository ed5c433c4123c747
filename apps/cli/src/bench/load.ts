/**
 * Sends the workload at one request rate through the official `openai` client (streaming
 * completions with usage) and times every request the way `vllm bench serve` does:
 *   TTFT  send to the first streamed chunk;   ITL  the gaps between chunks (pooled over requests);
 *   TPOT  (latency - TTFT) / (output tokens - 1) per request;   E2EL  send to the last byte.
 * Throughput counts completed requests over the run's duration (first send to last finish);
 * goodput counts those within every SLO given.
 */
import OpenAI from "openai";
import type { BenchRequest } from "./dataset.js";
import { poissonGaps } from "./dataset.js";
import { type Dist, dist } from "./stats.js";

export interface RequestTiming {
  ok: boolean;
  error?: string;
  inputTokens: number;
  outputTokens: number;
  /** Seconds. */
  ttft: number;
  latency: number;
  itl: number[];
}

export interface Slo {
  ttftMs?: number;
  tpotMs?: number;
  e2elMs?: number;
}

export interface RateResult {
  requestRate: number | "inf";
  numPrompts: number;
  completed: number;
  failed: number;
  errors: Record<string, number>;
  durationS: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  maxConcurrency: number | null;
  goodput?: { slo: Slo; goodRequests: number; requestsPerS: number };
  ttftMs?: Dist;
  tpotMs?: Dist;
  itlMs?: Dist;
  e2elMs?: Dist;
}

export interface LoadOptions {
  client: OpenAI;
  model: string;
  requests: BenchRequest[];
  rate: number;
  seed: number;
  maxConcurrency?: number;
  slo?: Slo;
  /** Outputs run to their length (ignore_eos), as vLLM's random dataset does (true). */
  ignoreEos?: boolean;
}

/** One streamed completion, timed. */
export async function timeRequest(client: OpenAI, model: string, req: BenchRequest, ignoreEos: boolean): Promise<RequestTiming> {
  const t: RequestTiming = { ok: false, inputTokens: req.promptIds.length, outputTokens: 0, ttft: 0, latency: 0, itl: [] };
  const st = performance.now();
  let last = st;
  let first = true;
  try {
    const body = { model, prompt: req.promptIds, max_tokens: req.outputLen, temperature: 0, stream: true, stream_options: { include_usage: true }, ignore_eos: ignoreEos };
    const stream = await client.completions.create(body as OpenAI.CompletionCreateParamsStreaming);
    for await (const chunk of stream) {
      const now = performance.now();
      if (chunk.choices.length > 0) {
        if (first) t.ttft = (now - st) / 1000;
        else t.itl.push((now - last) / 1000);
        first = false;
        last = now;
      }
      if (chunk.usage) t.outputTokens = chunk.usage.completion_tokens;
    }
    t.latency = (performance.now() - st) / 1000;
    t.ok = !first;
    if (first) t.error = "no chunk received";
  } catch (e) {
    t.error = e instanceof OpenAI.APIError ? `${e.status ?? "stream"} ${e.code ?? ""} ${e.message}`.trim() : `${(e as Error).name}: ${(e as Error).message}`;
  }
  return t;
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
const ms = (d: Dist | undefined): Dist | undefined => d && { n: d.n, mean: d.mean * 1e3, std: d.std * 1e3, p50: d.p50 * 1e3, p90: d.p90 * 1e3, p99: d.p99 * 1e3, max: d.max * 1e3 };

/** Runs the workload at `rate` requests/s (Infinity: all at once), at most maxConcurrency in flight. */
export async function runRate(o: LoadOptions): Promise<RateResult> {
  const gaps = poissonGaps(o.requests.length, o.rate, o.seed);
  const ignoreEos = o.ignoreEos ?? true;
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  const acquire = async () => {
    while (o.maxConcurrency !== undefined && inFlight >= o.maxConcurrency) await new Promise<void>((r) => waiters.push(r));
    inFlight++;
  };
  const release = () => {
    inFlight--;
    waiters.shift()?.();
  };
  const t0 = performance.now();
  const pending: Promise<RequestTiming>[] = [];
  for (let i = 0; i < o.requests.length; i++) {
    if (gaps[i] > 0) await sleep(gaps[i]);
    await acquire();
    pending.push(timeRequest(o.client, o.model, o.requests[i], ignoreEos).finally(release));
  }
  const timings = await Promise.all(pending);
  const durationS = (performance.now() - t0) / 1000;
  const ok = timings.filter((t) => t.ok);
  const errors: Record<string, number> = {};
  for (const t of timings) if (!t.ok) errors[t.error ?? "?"] = (errors[t.error ?? "?"] ?? 0) + 1;
  const tpot = ok.filter((t) => t.outputTokens > 1).map((t) => (t.latency - t.ttft) / (t.outputTokens - 1));
  const input = ok.reduce((a, t) => a + t.inputTokens, 0);
  const output = ok.reduce((a, t) => a + t.outputTokens, 0);
  const r: RateResult = {
    requestRate: Number.isFinite(o.rate) ? o.rate : "inf",
    numPrompts: o.requests.length,
    completed: ok.length,
    failed: timings.length - ok.length,
    errors,
    durationS,
    totalInputTokens: input,
    totalOutputTokens: output,
    requestThroughput: ok.length / durationS,
    outputThroughput: output / durationS,
    totalTokenThroughput: (input + output) / durationS,
    maxConcurrency: o.maxConcurrency ?? null,
    ttftMs: ms(dist(ok.map((t) => t.ttft))),
    tpotMs: ms(dist(tpot)),
    itlMs: ms(dist(ok.flatMap((t) => t.itl))),
    e2elMs: ms(dist(ok.map((t) => t.latency))),
  };
  const slo = o.slo;
  if (slo && (slo.ttftMs !== undefined || slo.tpotMs !== undefined || slo.e2elMs !== undefined)) {
    const good = ok.filter((t) => {
      const tp = t.outputTokens > 1 ? (t.latency - t.ttft) / (t.outputTokens - 1) : 0;
      return (slo.ttftMs === undefined || t.ttft * 1e3 <= slo.ttftMs) && (slo.tpotMs === undefined || tp * 1e3 <= slo.tpotMs) && (slo.e2elMs === undefined || t.latency * 1e3 <= slo.e2elMs);
    }).length;
    r.goodput = { slo, goodRequests: good, requestsPerS: good / durationS };
  }
  return r;
}
