/**
 * A soak client for a running server (@marlin/server/soak): many streaming completions at a fixed
 * concurrency, a share of the clients hanging up at random points, then checks that nothing was
 * lost or leaked: every request not hung up ended with a finish reason and [DONE], the KV cache is
 * back to all-free, the waiting queue stayed bounded (429s counted), and the server's resident
 * memory grew less than a bound after a warm-up. Loopback use; bounded in count and in time.
 */
import { Rng } from "@marlin/core";

export interface SoakOptions {
  baseUrl: string;
  model?: string;
  apiKey?: string;
  /** Prompts drawn from (text or token ids). */
  prompts: (string | number[])[];
  requests?: number;
  concurrency?: number;
  /** Share of clients that hang up at a random point (0.3). */
  disconnectFraction?: number;
  /** max_tokens drawn uniformly in [min, max] (8, 48). */
  maxTokens?: [number, number];
  seed?: number;
  /** The server's maxQueued, to check the waiting queue against (skipped when undefined). */
  maxQueued?: number;
  /** Requests after which resident memory is taken as the baseline (100). */
  warmup?: number;
  /** Most growth of resident memory after the warm-up, MB (50). */
  maxRssGrowthMb?: number;
  /** The whole run stops starting requests after this (600000 ms). */
  deadlineMs?: number;
  /** One request's limit (120000 ms). */
  requestTimeoutMs?: number;
  /** A request refused with 429 is sent again after a short pause, up to this many times (100). */
  maxRetries429?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SoakReport {
  requests: number;
  started: number;
  /** Requests planned to hang up (some end first, e.g. at EOS, and count as completed). */
  plannedHangUps: number;
  completed: number;
  disconnected: number;
  /** 429 answers (each retried after a pause). */
  rejected429: number;
  /** Requests still refused after maxRetries429 tries. */
  gaveUp: number;
  /** Requests not hung up that ended without a finish reason or [DONE], or failed. */
  lost: number;
  errors: Record<string, number>;
  finishReasons: Record<string, number>;
  completionTokens: number;
  maxWaitingSeen: number;
  maxRunningSeen: number;
  kvBlocksTotal: number;
  kvBlocksFreeAtEnd: number;
  rssBaselineMb: number;
  rssEndMb: number;
  rssGrowthMb: number;
  seconds: number;
  failures: string[];
  ok: boolean;
}

/** Samples of a Prometheus text page: `name{labels}` -> value (labels as written). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    // Prometheus spells NaN / +Inf / -Inf in any case (prom-client writes "Nan" for an empty gauge).
    const word = m[3].toLowerCase();
    const v = word === "+inf" || word === "inf" ? Number.POSITIVE_INFINITY : word === "-inf" ? Number.NEGATIVE_INFINITY : word === "nan" ? Number.NaN : Number(m[3]);
    if (Number.isNaN(v) && word !== "nan") throw new Error(`bad sample value in: ${line}`);
    out.set(m[1] + (m[2] ?? ""), v);
  }
  return out;
}

/** The value of the first sample of `name` (any labels). */
export function metricValue(samples: Map<string, number>, name: string): number | undefined {
  for (const [k, v] of samples) if (k === name || k.startsWith(`${name}{`)) return v;
  return undefined;
}

/** Reads `data:` events from an SSE response body. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const part of body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let at = buf.indexOf("\n\n");
    while (at >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      for (const line of ev.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
      at = buf.indexOf("\n\n");
    }
  }
}

type Outcome =
  | { kind: "completed"; finish: string; tokens: number }
  | { kind: "disconnected" }
  | { kind: "rejected" }
  | { kind: "lost"; why: string };

async function oneRequest(o: Required<Pick<SoakOptions, "baseUrl" | "requestTimeoutMs">> & SoakOptions, prompt: string | number[], maxTokens: number, hangUpAt: number | undefined): Promise<Outcome> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error("request timeout")), o.requestTimeoutMs);
  let chunks = 0;
  try {
    const res = await fetch(`${o.baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
      body: JSON.stringify({
        ...(o.model ? { model: o.model } : {}),
        prompt,
        max_tokens: maxTokens,
        temperature: 0.8,
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal: ac.signal,
    });
    if (res.status === 429) {
      await res.text();
      return { kind: "rejected" };
    }
    if (res.status !== 200 || !res.body) return { kind: "lost", why: `status ${res.status}: ${(await res.text()).slice(0, 200)}` };
    if (hangUpAt === 0) {
      ac.abort();
      return { kind: "disconnected" };
    }
    let finish: string | undefined;
    let tokens = -1;
    let done = false;
    for await (const data of sseEvents(res.body)) {
      if (data === "[DONE]") {
        done = true;
        break;
      }
      const ev = JSON.parse(data);
      if (ev.error) return { kind: "lost", why: `error event: ${ev.error.message}` };
      for (const c of ev.choices ?? []) if (c.finish_reason) finish = c.finish_reason;
      if (ev.usage) tokens = ev.usage.completion_tokens;
      if (hangUpAt !== undefined && ++chunks >= hangUpAt) {
        ac.abort();
        return { kind: "disconnected" };
      }
    }
    // Here no hang-up happened (the stream may have ended before its hang-up point).
    if (!done || !finish) return { kind: "lost", why: `stream ended without ${!done ? "[DONE]" : "a finish reason"}` };
    return { kind: "completed", finish, tokens };
  } catch (e) {
    if (hangUpAt !== undefined && ac.signal.aborted) return { kind: "disconnected" };
    return { kind: "lost", why: `${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

async function scrape(baseUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

const MB = 1024 * 1024;

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const o = { requestTimeoutMs: 120_000, ...opts };
  const total = opts.requests ?? 1000;
  const concurrency = opts.concurrency ?? 64;
  const fraction = opts.disconnectFraction ?? 0.3;
  const [minTok, maxTok] = opts.maxTokens ?? [8, 48];
  const warmup = Math.min(opts.warmup ?? 100, total);
  const rng = new Rng(opts.seed ?? 1);
  if (opts.prompts.length === 0) throw new Error("runSoak needs prompts");
  // Every request's draws are made up front, so a seed replays the same run.
  const plan = Array.from({ length: total }, () => {
    const maxTokens = rng.int(minTok, maxTok + 1);
    const hangUp = rng.next() < fraction;
    return { prompt: opts.prompts[rng.int(0, opts.prompts.length)], maxTokens, hangUpAt: hangUp ? rng.int(0, maxTokens) : undefined };
  });
  const report: SoakReport = {
    requests: total,
    started: 0,
    plannedHangUps: plan.filter((p) => p.hangUpAt !== undefined).length,
    completed: 0,
    disconnected: 0,
    rejected429: 0,
    gaveUp: 0,
    lost: 0,
    errors: {},
    finishReasons: {},
    completionTokens: 0,
    maxWaitingSeen: 0,
    maxRunningSeen: 0,
    kvBlocksTotal: 0,
    kvBlocksFreeAtEnd: 0,
    rssBaselineMb: 0,
    rssEndMb: 0,
    rssGrowthMb: 0,
    seconds: 0,
    failures: [],
    ok: false,
  };
  const t0 = Date.now();
  const deadline = t0 + (opts.deadlineMs ?? 600_000);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        const m = await scrape(o.baseUrl);
        report.maxWaitingSeen = Math.max(report.maxWaitingSeen, metricValue(m, "marlin_requests_waiting") ?? 0);
        report.maxRunningSeen = Math.max(report.maxRunningSeen, metricValue(m, "marlin_requests_running") ?? 0);
      } catch {
        // a missed sample is not a result
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  let next = 0;
  let finished = 0;
  let baseline: Promise<number> | undefined;
  const worker = async () => {
    while (next < total && Date.now() < deadline) {
      const p = plan[next++];
      report.started++;
      let r = await oneRequest(o, p.prompt, p.maxTokens, p.hangUpAt);
      for (let tries = 0; r.kind === "rejected" && tries < (opts.maxRetries429 ?? 100) && Date.now() < deadline; tries++) {
        report.rejected429++;
        await new Promise((res) => setTimeout(res, 20 + Math.random() * 80));
        r = await oneRequest(o, p.prompt, p.maxTokens, p.hangUpAt);
      }
      if (r.kind === "completed") {
        report.completed++;
        report.finishReasons[r.finish] = (report.finishReasons[r.finish] ?? 0) + 1;
        report.completionTokens += Math.max(0, r.tokens);
      } else if (r.kind === "disconnected") report.disconnected++;
      else if (r.kind === "rejected") {
        report.rejected429++;
        report.gaveUp++;
      }
      else {
        report.lost++;
        report.errors[r.why] = (report.errors[r.why] ?? 0) + 1;
      }
      finished++;
      if (finished === warmup) baseline = scrape(o.baseUrl).then((m) => metricValue(m, "process_resident_memory_bytes") ?? 0);
      opts.onProgress?.(finished, total);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  sampling = false;
  await sampler;
  // Hung-up requests are aborted by the server as it notices the closed sockets: wait for quiet.
  let end = await scrape(o.baseUrl);
  const quietBy = Date.now() + 30_000;
  const busy = (m: Map<string, number>) =>
    (metricValue(m, "marlin_requests_running") ?? 0) + (metricValue(m, "marlin_requests_waiting") ?? 0) + (metricValue(m, "marlin_streams_open") ?? 0) > 0 ||
    metricValue(m, "marlin_kv_blocks_free") !== metricValue(m, "marlin_kv_blocks_total");
  while (busy(end) && Date.now() < quietBy) {
    await new Promise((r) => setTimeout(r, 100));
    end = await scrape(o.baseUrl);
  }
  report.seconds = (Date.now() - t0) / 1000;
  report.kvBlocksTotal = metricValue(end, "marlin_kv_blocks_total") ?? 0;
  report.kvBlocksFreeAtEnd = metricValue(end, "marlin_kv_blocks_free") ?? 0;
  report.rssBaselineMb = ((await baseline) ?? 0) / MB;
  report.rssEndMb = (metricValue(end, "process_resident_memory_bytes") ?? 0) / MB;
  report.rssGrowthMb = report.rssEndMb - report.rssBaselineMb;
  const f = report.failures;
  if (report.started < total) f.push(`only ${report.started} of ${total} requests started before the deadline`);
  if (report.gaveUp > 0) f.push(`${report.gaveUp} requests were still refused (429) after ${opts.maxRetries429 ?? 100} tries`);
  if (report.lost > 0) f.push(`${report.lost} requests not hung up ended without a finish reason: ${JSON.stringify(report.errors)}`);
  if (report.kvBlocksFreeAtEnd !== report.kvBlocksTotal) f.push(`KV blocks leaked: ${report.kvBlocksTotal - report.kvBlocksFreeAtEnd} of ${report.kvBlocksTotal} not free`);
  if (busy(end)) f.push("the server did not go quiet within 30 s of the last request");
  if (opts.maxQueued !== undefined && report.maxWaitingSeen > opts.maxQueued) f.push(`waiting queue reached ${report.maxWaitingSeen} > maxQueued ${opts.maxQueued}`);
  const maxGrowth = opts.maxRssGrowthMb ?? 50;
  if (warmup < total && report.rssGrowthMb >= maxGrowth) f.push(`resident memory grew ${report.rssGrowthMb.toFixed(1)} MB after ${warmup} requests (limit ${maxGrowth})`);
  report.ok = f.length === 0;
  return report;
}
