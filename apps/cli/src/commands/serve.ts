/** `marlin serve <model-dir>`: the OpenAI-compatible server until SIGTERM / SIGINT (graceful shutdown). */
import { readFileSync } from "node:fs";
import { createServer, type ServerOptions } from "@marlin/server";
import { defined, type Io, modelDir, num, oneOf, parse, positionals, str, UsageError } from "../args.js";

export const SERVE_USAGE = `usage: marlin serve <model-dir> [options]

  --host HOST                  address to listen on (127.0.0.1)
  --port N                     port (8000; 0 picks a free one)
  --device auto|cpu|cuda       where the model runs (auto: the GPU when present)
  --tensor-parallel-size N     ranks the model is split over (1; CPU: worker threads, CUDA: one GPU each)
  --max-num-seqs N             sequences in the running batch (64)
  --max-model-len N            longest prompt + output (the model's max_position_embeddings)
  --max-num-batched-tokens N   tokens in one step (2048)
  --kv-cache-tokens N          KV cache size in tokens (CPU; the GPU sizes it from free memory)
  --gpu-memory-fraction F      GPU: share of free memory for the KV cache (0.8)
  --api-key KEY                require "Authorization: Bearer KEY" on /v1/ (or MARLIN_API_KEY)
  --served-model-name NAME     the model name clients use (the directory's name)
  --chat-template FILE         a Jinja chat template in place of the model's
  --max-queued N               waiting requests before 429 (256)
  --idle-timeout S             cut off a client that reads nothing for S seconds (60)
  --shutdown-timeout S         on SIGTERM, let requests finish for S seconds, then abort (30)
  --log-level LEVEL            fatal|error|warn|info|debug (info); logs are JSON lines on stdout
  --seed N                     seed of unseeded sampled requests

GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streaming with SSE), GET /health,
GET /metrics (Prometheus).
`;

const OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  device: { type: "string" },
  "tensor-parallel-size": { type: "string" },
  "max-num-seqs": { type: "string" },
  "max-model-len": { type: "string" },
  "max-num-batched-tokens": { type: "string" },
  "kv-cache-tokens": { type: "string" },
  "gpu-memory-fraction": { type: "string" },
  "api-key": { type: "string" },
  "served-model-name": { type: "string" },
  "chat-template": { type: "string" },
  "max-queued": { type: "string" },
  "idle-timeout": { type: "string" },
  "shutdown-timeout": { type: "string" },
  "log-level": { type: "string" },
  seed: { type: "string" },
} as const;

interface ServeArgs {
  dir: string;
  host: string;
  port: number;
  options: ServerOptions;
}

export function parseServeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ServeArgs | "help" {
  const p = parse(args, OPTIONS);
  if (p.values.help) return "help";
  const [dir] = positionals(p, ["model-dir"]);
  const templateFile = str(p, "chat-template");
  let chatTemplate: string | undefined;
  if (templateFile !== undefined) {
    try {
      chatTemplate = readFileSync(templateFile, "utf8");
    } catch (e) {
      throw new UsageError(`--chat-template: cannot read ${templateFile}: ${(e as Error).message}`);
    }
  }
  const idle = num(p, "idle-timeout", { min: 0.001 });
  const shutdown = num(p, "shutdown-timeout", { min: 0 });
  const options: ServerOptions = defined({
    apiKey: str(p, "api-key") ?? env.MARLIN_API_KEY,
    servedModelName: str(p, "served-model-name"),
    chatTemplate,
    maxQueued: num(p, "max-queued", { integer: true, min: 1 }),
    idleTimeoutMs: idle === undefined ? undefined : idle * 1000,
    shutdownTimeoutMs: shutdown === undefined ? undefined : shutdown * 1000,
    logger: { level: oneOf(p, "log-level", ["fatal", "error", "warn", "info", "debug", "trace"] as const) ?? "info" },
    load: defined({
      device: oneOf(p, "device", ["auto", "cpu", "cuda"] as const),
      tensorParallelSize: num(p, "tensor-parallel-size", { integer: true, min: 1 }),
      maxNumSeqs: num(p, "max-num-seqs", { integer: true, min: 1 }),
      maxModelLen: num(p, "max-model-len", { integer: true, min: 2 }),
      maxNumBatchedTokens: num(p, "max-num-batched-tokens", { integer: true, min: 1 }),
      kvCacheTokens: num(p, "kv-cache-tokens", { integer: true, min: 1 }),
      gpuMemoryFraction: num(p, "gpu-memory-fraction", { min: 0.01, max: 0.99 }),
      seed: num(p, "seed", { integer: true, min: 0 }),
    }),
  });
  return { dir: modelDir(dir), host: str(p, "host") ?? "127.0.0.1", port: num(p, "port", { integer: true, min: 0, max: 65535 }) ?? 8000, options };
}

/** Runs until `io.signal` fires; then shuts down gracefully and resolves with the exit code. */
export async function serve(args: string[], io: Io): Promise<number> {
  const a = parseServeArgs(args);
  if (a === "help") {
    io.stdout.write(SERVE_USAGE);
    return 0;
  }
  const t0 = performance.now();
  const server = await createServer(a.dir, a.options);
  let url: string;
  try {
    url = await server.listen({ host: a.host, port: a.port });
  } catch (e) {
    await server.shutdown({ deadlineMs: 0 });
    throw e;
  }
  const dev = server.engine.engine.runner.device;
  io.stderr.write(`marlin serve: ${server.modelName} on ${dev}, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s, listening on ${url}\n`);
  if (!server.hasChatTemplate) io.stderr.write("marlin serve: the model has no chat template: /v1/chat/completions answers 400 (pass --chat-template FILE)\n");
  await new Promise<void>((r) => {
    if (io.signal?.aborted) r();
    io.signal?.addEventListener("abort", () => r(), { once: true });
  });
  io.stderr.write("marlin serve: shutting down (in-flight requests may finish; a second signal stops at once)\n");
  await server.shutdown();
  io.stderr.write("marlin serve: stopped\n");
  return 0;
}
