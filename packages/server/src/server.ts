/**
 * createServer(): an OpenAI-compatible HTTP server (Fastify) on an engine or a model directory.
 *
 *   const server = await createServer("models/tiny-llama", { load: { device: "cpu" } });
 *   const url = await server.listen({ host: "127.0.0.1", port: 8000 });
 *   ...
 *   await server.shutdown({ deadlineMs: 30_000 }); // what `marlin serve` does on SIGTERM
 *
 * Besides the OpenAI routes: GET /health (200, or 503 once the engine loop died or a shutdown
 * began), GET /metrics (Prometheus). With `apiKey`, every /v1/ route wants `Authorization: Bearer`.
 * One structured (JSON) log line per request.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { cpus } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { InvalidArgumentError } from "@marlin/core";
import { AsyncEngine, LLM, LLMEngine, type LoadOptions } from "@marlin/engine";
import { listDevices } from "@marlin/kernel";
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from "fastify";
import { ChatTemplate } from "./chat-template.js";
import { ApiError, toApiError } from "./errors.js";
import type { GenerationLog } from "./generation.js";
import { ServerMetrics } from "./metrics.js";
import { type RouteContext, registerRoutes } from "./routes.js";

export type EngineSource = string | LLM | LLMEngine | AsyncEngine;

export interface ServerLogOptions {
  /** pino level (default "info"). */
  level?: string;
  /** Where JSON lines go (default stdout). */
  stream?: { write(line: string): void };
}

export interface ServerOptions {
  /** The name clients pass as `model` (default: the model directory's name). */
  servedModelName?: string;
  /** Every /v1/ request must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Jinja chat template text, in place of the model's. */
  chatTemplate?: string;
  /** Where tokenizer_config.json is (default: the model directory, or the tokenizer's). */
  modelDir?: string;
  /** How a model directory is loaded (device, maxNumSeqs, maxModelLen, KV cache size...). */
  load?: LoadOptions;
  /** Waiting requests beyond which new ones get 429 (default 256). */
  maxQueued?: number;
  /** Outputs a stream may buffer before its sequence pauses (default 64). */
  highWaterMark?: number;
  /** A stream not read for this long (client not reading) is cut off and its request aborted (default 60000 ms). */
  idleTimeoutMs?: number;
  /** Largest request body in bytes; larger ones get 413 (default 1 MiB). */
  bodyLimit?: number;
  /** Largest `n` (default 16). */
  maxN?: number;
  /** Most prompts in one /v1/completions request (default 64). */
  maxPrompts?: number;
  /** Structured request logs: false for none (default: info to stdout). */
  logger?: boolean | ServerLogOptions;
  /** Default deadline of shutdown() (default 30000 ms). */
  shutdownTimeoutMs?: number;
}

export interface ShutdownOptions {
  /** In-flight requests may finish until then; the rest are aborted (default: shutdownTimeoutMs). */
  deadlineMs?: number;
}

const sleep = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    t.unref?.();
  });

function keyDigest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function deviceName(device: "cpu" | "cuda"): string {
  if (device === "cuda") return listDevices()[0]?.name ?? "cuda";
  return cpus()[0]?.model?.trim() ?? "cpu";
}

export class MarlinServer {
  readonly app: FastifyInstance;
  readonly engine: AsyncEngine;
  readonly metrics: ServerMetrics;
  readonly modelName: string;
  /** Set when the server loaded the model itself (it is disposed at shutdown). */
  readonly llm: LLM | undefined;
  /** Whether /v1/chat/completions has a template to render messages with. */
  readonly hasChatTemplate: boolean;
  private readonly shutdownTimeoutMs: number;
  private state: "running" | "draining" | "stopped" = "running";
  private aborted = false;
  private closing: Promise<void> | undefined;
  private address: string | undefined;

  /** @internal Use createServer(). */
  constructor(app: FastifyInstance, engine: AsyncEngine, metrics: ServerMetrics, modelName: string, llm: LLM | undefined, shutdownTimeoutMs: number, hasChatTemplate: boolean) {
    this.app = app;
    this.engine = engine;
    this.metrics = metrics;
    this.modelName = modelName;
    this.llm = llm;
    this.shutdownTimeoutMs = shutdownTimeoutMs;
    this.hasChatTemplate = hasChatTemplate;
  }

  get draining(): boolean {
    return this.state !== "running";
  }

  /** True once a shutdown ran past its deadline and aborted the requests left. */
  get abortedByShutdown(): boolean {
    return this.aborted;
  }

  /** http://host:port once listening. */
  get url(): string | undefined {
    return this.address;
  }

  /** Starts listening (default 127.0.0.1:8000; port 0 picks a free one); returns the base URL. */
  async listen(opts: { host?: string; port?: number } = {}): Promise<string> {
    const host = opts.host ?? "127.0.0.1";
    await this.app.listen({ host, port: opts.port ?? 8000 });
    const a = this.app.server.address();
    const port = a && typeof a === "object" ? a.port : opts.port;
    this.address = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    return this.address;
  }

  /**
   * Graceful shutdown: stop accepting (new requests get 503), let in-flight requests finish until
   * the deadline, then abort the rest (streams end with a 503 error event) and close every
   * connection. Disposes the model when the server loaded it. Safe to call twice.
   */
  shutdown(opts: ShutdownOptions = {}): Promise<void> {
    this.closing ??= this.drain(opts.deadlineMs ?? this.shutdownTimeoutMs);
    return this.closing;
  }

  private async drain(deadlineMs: number): Promise<void> {
    this.state = "draining";
    this.app.log.info({ deadlineMs, running: this.engine.engine.numRunning, waiting: this.engine.numQueued }, "shutting down");
    // Fastify's close stops listening and resolves once every in-flight request has ended.
    let closed = false;
    const close = this.app.close().then(() => {
      closed = true;
    });
    this.app.server.closeIdleConnections();
    await Promise.race([close, sleep(deadlineMs)]);
    if (!closed) {
      this.aborted = true;
      const n = this.engine.abortAll();
      this.app.log.warn({ aborted: n }, "shutdown deadline passed: aborting the requests left");
      await Promise.race([close, sleep(2000)]);
      this.app.server.closeAllConnections();
      await close;
    }
    await this.engine.idle();
    this.state = "stopped";
    this.llm?.dispose();
  }

  /** @internal After each response while draining: keep-alive sockets must not hold the close. */
  responded(): void {
    if (this.state === "draining") this.app.server.closeIdleConnections();
  }
}

/** A server on `source`: a model directory (loaded with options.load), an LLM, an LLMEngine or an AsyncEngine. */
export async function createServer(source: EngineSource, options: ServerOptions = {}): Promise<MarlinServer> {
  let llm: LLM | undefined;
  let engine: AsyncEngine;
  let modelDir = options.modelDir;
  if (typeof source === "string") {
    modelDir ??= resolve(source);
    llm = await LLM.load(source, options.load);
  }
  const base = llm ?? source;
  if (base instanceof AsyncEngine) engine = base;
  else {
    const core = base instanceof LLM ? base.engine : base;
    if (!(core instanceof LLMEngine)) throw new InvalidArgumentError("createServer needs a model directory, an LLM, an LLMEngine or an AsyncEngine");
    engine = new AsyncEngine(core, { maxQueued: options.maxQueued ?? 256, highWaterMark: options.highWaterMark, idleTimeoutMs: options.idleTimeoutMs });
  }
  try {
    return buildServer(engine, llm, modelDir, options);
  } catch (e) {
    llm?.dispose();
    throw e;
  }
}

function buildServer(engine: AsyncEngine, llm: LLM | undefined, dir: string | undefined, options: ServerOptions): MarlinServer {
  const core = engine.engine;
  const modelDir = dir ?? (core.tokenizer ? dirname(core.tokenizer.path) : undefined);
  const modelName = options.servedModelName ?? (modelDir ? basename(modelDir) : "marlin");
  const chatTemplate = ChatTemplate.fromModelDir(modelDir, options.chatTemplate);
  const logOpt = options.logger ?? true;
  const app = Fastify({
    logger: logOpt === false ? false : { level: (logOpt === true ? undefined : logOpt.level) ?? "info", ...(logOpt !== true && logOpt.stream ? { stream: logOpt.stream } : {}) },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 1 << 20,
    return503OnClosing: false,
    requestIdHeader: "x-request-id",
  });
  const metrics = new ServerMetrics(engine, modelName);
  const server = new MarlinServer(app, engine, metrics, modelName, llm, options.shutdownTimeoutMs ?? 30_000, chatTemplate !== undefined);
  const logs = new WeakMap<FastifyRequest, GenerationLog>();
  const hungUp = new WeakSet<FastifyRequest>();
  const device = core.runner.device;
  const started = Date.now();

  const logLine = (req: FastifyRequest, status: number, ms: number) => {
    const route = req.routeOptions.url ?? "unknown";
    metrics.observeHttp(route, status);
    const { settled: _, ...g } = logs.get(req) ?? { settled: true };
    req.log.info({ method: req.method, url: req.url, status, ms: Math.round(ms * 10) / 10, ...g }, "request");
    server.responded();
  };

  const expected = options.apiKey !== undefined ? keyDigest(`Bearer ${options.apiKey}`) : undefined;
  app.addHook("onRequest", async (req, reply) => {
    // A response that closes unfinished (the client left) never reaches onResponse: 499, as nginx logs it.
    reply.raw.once("close", () => {
      if (reply.raw.writableFinished) return;
      const g = logs.get(req);
      if (g && !g.settled) hungUp.add(req); // logged when its generation has ended
      else logLine(req, 499, reply.elapsedTime);
    });
    if (!req.url.startsWith("/v1/")) return;
    if (server.draining) throw new ApiError(503, "the server is shutting down", { type: "service_unavailable", code: "shutting_down" });
    if (expected && !timingSafeEqual(keyDigest(req.headers.authorization ?? ""), expected))
      throw new ApiError(401, "invalid or missing API key (Authorization: Bearer <key>)", { code: "invalid_api_key" });
  });
  app.addHook("onResponse", async (req, reply) => logLine(req, reply.statusCode, reply.elapsedTime));
  app.setErrorHandler(async (err, req, reply) => {
    const api = toApiError(err);
    if (api.status >= 500) req.log.error({ err: err instanceof Error ? err.message : String(err) }, "request failed");
    if (api.status === 429) reply.header("retry-after", "1");
    if (api.status === 503 && server.draining) reply.header("connection", "close");
    return reply.code(api.status).send(api.body);
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send(new ApiError(404, `no route ${req.method} ${req.url}`, { code: "not_found" }).body),
  );

  app.get("/health", async (_req, reply) => {
    const info = { model: modelName, device, device_name: deviceName(device), uptime_s: Math.round((Date.now() - started) / 1000) };
    if (engine.error !== undefined) return reply.code(503).send({ status: "dead", error: String((engine.error as Error)?.message ?? engine.error), ...info });
    if (server.draining) return reply.code(503).send({ status: "shutting_down", ...info });
    return { status: "ok", ...info };
  });
  app.get("/metrics", async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));

  const ctx: RouteContext = {
    engine,
    metrics,
    drainTimeoutMs: engine.idleTimeoutMs,
    get abortedByShutdown() {
      return server.abortedByShutdown;
    },
    modelName,
    modelRoot: modelDir ?? modelName,
    created: Math.floor(started / 1000),
    tokenizer: core.tokenizer,
    chatTemplate,
    defaults: core.defaults,
    maxN: options.maxN ?? 16,
    maxPrompts: options.maxPrompts ?? 64,
    logOf(req) {
      const g: GenerationLog = { stream: false, n: 1, promptTokens: 0, completionTokens: 0, finishReasons: [], clientAborted: false, settled: false };
      logs.set(req, g);
      return g;
    },
    settled(req, reply) {
      const g = logs.get(req);
      if (g) g.settled = true;
      if (hungUp.has(req)) logLine(req, 499, reply.elapsedTime);
    },
  };
  registerRoutes(app, ctx);
  return server;
}
