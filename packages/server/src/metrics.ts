/**
 * GET /metrics: Prometheus text through prom-client, on a registry of this server's own (several
 * servers may share a process). Engine state (running / waiting requests, KV blocks, prefix-cache
 * hits) is read at scrape time; latencies and token counts are observed as requests finish.
 */
import type { AsyncEngine, RequestOutput } from "@marlin/engine";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const TOKEN_BUCKETS = [0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly ttft: Histogram;
  private readonly tpot: Histogram;
  private readonly e2e: Histogram;
  private readonly queue: Histogram;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly finished: Counter<"finished_reason">;
  private readonly http: Counter<"route" | "status">;

  constructor(engine: AsyncEngine, model: string) {
    const registry = this.registry;
    registry.setDefaultLabels({ model_name: model });
    collectDefaultMetrics({ register: registry });
    const e = engine.engine;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    gauge("marlin_requests_running", "Requests in the running batch", () => e.numRunning);
    gauge("marlin_requests_waiting", "Requests waiting for admission (in the engine queue or being tokenized)", () => engine.numQueued);
    gauge("marlin_streams_open", "Request streams handed out and not yet closed", () => engine.numStreams);
    gauge("marlin_kv_blocks_total", "KV cache blocks", () => e.blocks.numBlocks);
    gauge("marlin_kv_blocks_free", "Free KV cache blocks (cached prefixes count as free)", () => e.blocks.numFreeBlocks);
    gauge("marlin_kv_cache_usage_ratio", "Fraction of KV cache blocks in use", () => 1 - e.blocks.numFreeBlocks / e.blocks.numBlocks);
    gauge("marlin_prefix_cache_hit_ratio", "Prompt tokens served from the prefix cache / prompt tokens admitted", () => {
      const s = e.blocks.stats;
      return s.queriedTokens ? s.hitTokens / s.queriedTokens : 0;
    });
    // The engine keeps these totals itself; each scrape copies them into a counter.
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    total("marlin_prefix_cache_queries_tokens_total", "Prompt tokens admitted", () => e.blocks.stats.queriedTokens);
    total("marlin_prefix_cache_hits_tokens_total", "Prompt tokens served from the prefix cache", () => e.blocks.stats.hitTokens);
    total("marlin_preemptions_total", "Sequences preempted by recompute", () => e.scheduler.numPreemptions);
    gauge("marlin_engine_healthy", "1 while the engine loop runs, 0 after it failed", () => (engine.error === undefined ? 1 : 0));
    const hist = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, buckets, registers: [registry] });
    this.ttft = hist("marlin_time_to_first_token_seconds", "Time from arrival to the first token", LATENCY_BUCKETS);
    this.tpot = hist("marlin_time_per_output_token_seconds", "Mean time per output token after the first", TOKEN_BUCKETS);
    this.e2e = hist("marlin_e2e_request_latency_seconds", "Time from arrival to the last token", LATENCY_BUCKETS);
    this.queue = hist("marlin_request_queue_time_seconds", "Time from arrival to first scheduling", LATENCY_BUCKETS);
    this.promptTokens = new Counter({ name: "marlin_prompt_tokens_total", help: "Prompt tokens of finished requests", registers: [registry] });
    this.generationTokens = new Counter({ name: "marlin_generation_tokens_total", help: "Generated tokens of finished requests", registers: [registry] });
    this.finished = new Counter({ name: "marlin_requests_finished_total", help: "Finished requests by reason", labelNames: ["finished_reason"], registers: [registry] });
    this.http = new Counter({ name: "marlin_http_requests_total", help: "HTTP requests by route and status", labelNames: ["route", "status"], registers: [registry] });
  }

  /** Records a request's final output. */
  observeFinished(o: RequestOutput): void {
    const m = o.metrics;
    if (m.ttftMs !== undefined) this.ttft.observe(m.ttftMs / 1000);
    if (m.tpotMs !== undefined) this.tpot.observe(m.tpotMs / 1000);
    if (m.e2eMs !== undefined) this.e2e.observe(m.e2eMs / 1000);
    if (m.firstScheduledTime !== undefined) this.queue.observe((m.firstScheduledTime - m.arrivalTime) / 1000);
    this.promptTokens.inc(o.promptTokenIds.length);
    this.generationTokens.inc(o.tokenIds.length);
    this.finished.inc({ finished_reason: o.finishReason ?? "unknown" });
  }

  observeHttp(route: string, status: number): void {
    this.http.inc({ route, status: String(status) });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
