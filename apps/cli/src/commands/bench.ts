/**
 * `marlin bench serve | compare | random-model`: the serving benchmark against any OpenAI-compatible
 * server, side-by-side tables of saved runs, and random-weight model directories to serve.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { makeRandomLlama } from "@marlin/engine";
import OpenAI from "openai";
import { type Io, num, oneOf, parse, positionals, str, UsageError } from "../args.js";
import { serveChart } from "../bench/chart.js";
import { makeDataset } from "../bench/dataset.js";
import { type RateResult, runRate, type Slo, timeRequest } from "../bench/load.js";
import { commitId, compareReports, formatReport, type ServeReport } from "../bench/report.js";

export const BENCH_USAGE = `usage: marlin bench serve --base-url URL [options]
       marlin bench compare <run.json> <run.json>... [--out chart.svg]
       marlin bench random-model <dir> [options]

marlin bench serve: a serving benchmark in the manner of \`vllm bench serve\`, through the openai client.
  --base-url URL             the server (http://127.0.0.1:8000)
  --model NAME               the model name (the server's first /v1/models entry)
  --api-key KEY              (or MARLIN_API_KEY / OPENAI_API_KEY)
  --request-rate R[,R...]    Poisson arrival rate(s) in requests/s, "inf" = all at once (inf)
  --num-prompts N            requests per rate (200)
  --dataset random|fixed     random lengths around the means, or exactly them (random)
  --input-len N              prompt tokens (256)
  --output-len N             output tokens (128; ignore_eos, so outputs run to length)
  --range-ratio R            random dataset: lengths uniform in [len*(1-R), len*(1+R)] (0.25)
  --vocab-size N             token ids of the random prompts (the server's vocab_size)
  --max-concurrency N        most requests in flight (unbounded)
  --goodput SLO[,SLO...]     e.g. ttft:500,tpot:50,e2el:10000 (milliseconds)
  --seed N                   prompts and arrivals (0)
  --label NAME               names the run and its files (<model>-<device>)
  --result-dir DIR           where serve-<label>.json and .svg go (bench/results)
Metrics: TTFT, TPOT, ITL, E2EL (mean, p50, p90, p99), request / token throughput, goodput.

marlin bench compare: prints the runs side by side (the first is the baseline) and draws one chart.

marlin bench random-model <dir>: a Llama-2-7B-shaped model with random fp16 weights (shape options
  --layers 32 --hidden-size 4096 --intermediate-size 11008 --heads 32 --kv-heads 32 --vocab-size 32000
  --max-positions 4096), --seed N, --tokenizer-from DIR (copies tokenizer.json), --device auto|cpu|cuda,
  --format fp16|marlin (marlin: random 4-bit Marlin weights, group 128, drawn directly; for speed runs).
`;

const SERVE_OPTIONS = {
  "base-url": { type: "string" },
  model: { type: "string" },
  "api-key": { type: "string" },
  "request-rate": { type: "string" },
  "num-prompts": { type: "string" },
  dataset: { type: "string" },
  "input-len": { type: "string" },
  "output-len": { type: "string" },
  "range-ratio": { type: "string" },
  "vocab-size": { type: "string" },
  "max-concurrency": { type: "string" },
  goodput: { type: "string", multiple: true },
  seed: { type: "string" },
  label: { type: "string" },
  "result-dir": { type: "string" },
} as const;

function parseRates(v: string | undefined): number[] {
  return (v ?? "inf").split(",").map((s) => {
    const t = s.trim().toLowerCase();
    if (t === "inf" || t === "infinity") return Number.POSITIVE_INFINITY;
    const r = Number(t);
    if (t === "" || !(r > 0) || !Number.isFinite(r)) throw new UsageError(`--request-rate takes positive numbers or inf, got "${s}"`);
    return r;
  });
}

function parseSlo(list: string[] | undefined): Slo | undefined {
  if (!list?.length) return undefined;
  const slo: Slo = {};
  for (const part of list.flatMap((s) => s.split(/[, ]+/)).filter(Boolean)) {
    const [k, v] = part.split(":");
    const ms = Number(v);
    if (!(ms > 0)) throw new UsageError(`--goodput: "${part}" needs a positive number of milliseconds`);
    if (k === "ttft") slo.ttftMs = ms;
    else if (k === "tpot") slo.tpotMs = ms;
    else if (k === "e2el") slo.e2elMs = ms;
    else throw new UsageError(`--goodput: unknown metric "${k}" (ttft, tpot, e2el)`);
  }
  return slo;
}

const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "-");

async function benchServe(args: string[], io: Io): Promise<number> {
  const p = parse(args, SERVE_OPTIONS);
  if (p.values.help) {
    io.stdout.write(BENCH_USAGE);
    return 0;
  }
  positionals(p, []);
  const baseUrl = (str(p, "base-url") ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
  const rates = parseRates(str(p, "request-rate"));
  const numPrompts = num(p, "num-prompts", { integer: true, min: 1 }) ?? 200;
  const kind = oneOf(p, "dataset", ["random", "fixed"] as const) ?? "random";
  const inputLen = num(p, "input-len", { integer: true, min: 1 }) ?? 256;
  const outputLen = num(p, "output-len", { integer: true, min: 1 }) ?? 128;
  const rangeRatio = num(p, "range-ratio", { min: 0, max: 0.99 }) ?? 0.25;
  const maxConcurrency = num(p, "max-concurrency", { integer: true, min: 1 });
  const seed = num(p, "seed", { integer: true, min: 0 }) ?? 0;
  const slo = parseSlo(p.values.goodput as string[] | undefined);
  const apiKey = str(p, "api-key") ?? process.env.MARLIN_API_KEY ?? process.env.OPENAI_API_KEY ?? "none";
  const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 3_600_000 });

  // What the server says about itself: model, vocabulary, device.
  const models = await client.models.list().catch((e) => {
    throw new UsageError(`cannot reach ${baseUrl}/v1/models: ${(e as Error).message}`);
  });
  const card = models.data.find((m) => m.id === (str(p, "model") ?? models.data[0]?.id)) as (OpenAI.Model & { vocab_size?: number }) | undefined;
  if (!card) throw new UsageError(`the server has no model ${str(p, "model")} (it lists ${models.data.map((m) => m.id).join(", ")})`);
  const vocabSize = num(p, "vocab-size", { integer: true, min: 20 }) ?? card.vocab_size;
  if (vocabSize === undefined) throw new UsageError("the server does not say its vocab_size: pass --vocab-size");
  const health = (await fetch(`${baseUrl}/health`)
    .then((r) => r.json())
    .catch(() => null)) as Record<string, unknown> | null;
  const device = health?.device_name ? `${health.device_name} (${health.device})` : "unknown device";
  const dataset = { kind, numPrompts, inputLen, outputLen, rangeRatio: kind === "fixed" ? 0 : rangeRatio, vocabSize };
  const requests = makeDataset({ ...dataset, seed });
  const label = str(p, "label") ?? `${card.id}-${health?.device ?? "server"}`;
  io.stderr.write(`bench serve: ${card.id} at ${baseUrl} on ${device}; ${numPrompts} ${kind} prompts (input ${inputLen}, output ${outputLen}) at ${rates.map((r) => (Number.isFinite(r) ? r : "inf")).join(", ")} req/s\n`);

  const warm = await timeRequest(client, card.id, { promptIds: requests[0].promptIds, outputLen: Math.min(4, outputLen) }, true);
  if (!warm.ok) throw new Error(`the warm-up request failed: ${warm.error}`);
  const results: RateResult[] = [];
  for (const [i, rate] of rates.entries()) {
    const r = await runRate({ client, model: card.id, requests, rate, seed: seed + 1 + i, maxConcurrency, slo });
    results.push(r);
    io.stderr.write(`  rate ${r.requestRate}: ${r.completed}/${r.numPrompts} done in ${r.durationS.toFixed(1)} s, ${r.outputThroughput.toFixed(1)} output tok/s, TTFT p50 ${r.ttftMs?.p50.toFixed(1)} ms, TPOT p50 ${r.tpotMs?.p50.toFixed(2)} ms\n`);
  }
  const report: ServeReport = {
    bench: "serve",
    label,
    date: new Date().toISOString(),
    commit: commitId(),
    device,
    server: health,
    model: card.id,
    baseUrl,
    dataset,
    seed,
    maxConcurrency: maxConcurrency ?? null,
    ...(slo ? { slo } : {}),
    results,
  };
  const dir = resolve(str(p, "result-dir") ?? "bench/results");
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `serve-${fileSafe(label)}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${base}.svg`, serveChart([{ label, results }], `${label}: ${report.model} on ${device}, ${report.commit}, ${report.date.slice(0, 10)}`));
  io.stdout.write(`${formatReport(report)}\n`);
  io.stderr.write(`wrote ${base}.json and ${base}.svg\n`);
  return results.every((r) => r.failed === 0) ? 0 : 1;
}

function benchCompare(args: string[], io: Io): Promise<number> {
  const p = parse(args, { out: { type: "string" } });
  if (p.values.help) {
    io.stdout.write(BENCH_USAGE);
    return Promise.resolve(0);
  }
  if (p.positionals.length < 2) throw new UsageError("compare needs two or more run files (serve-*.json)");
  const runs = p.positionals.map((file) => {
    let r: ServeReport;
    try {
      r = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
    if (r?.bench !== "serve" || !Array.isArray(r.results)) throw new UsageError(`${file} is not a bench serve report`);
    return r;
  });
  io.stdout.write(`${compareReports(runs)}\n`);
  const out = str(p, "out") ?? join(dirname(p.positionals[0]), `serve-compare-${runs.map((r) => fileSafe(r.label)).join("-vs-")}.svg`);
  writeFileSync(out, serveChart(runs, `${runs.map((r) => r.label).join(" vs ")}: ${runs[0].device}, ${runs[0].commit}, ${runs[0].date.slice(0, 10)}`));
  io.stderr.write(`wrote ${out}\n`);
  return Promise.resolve(0);
}

const MODEL_OPTIONS = {
  layers: { type: "string" },
  "hidden-size": { type: "string" },
  "intermediate-size": { type: "string" },
  heads: { type: "string" },
  "kv-heads": { type: "string" },
  "vocab-size": { type: "string" },
  "max-positions": { type: "string" },
  seed: { type: "string" },
  "tokenizer-from": { type: "string" },
  device: { type: "string" },
  format: { type: "string" },
} as const;

async function benchRandomModel(args: string[], io: Io): Promise<number> {
  const p = parse(args, MODEL_OPTIONS);
  if (p.values.help) {
    io.stdout.write(BENCH_USAGE);
    return 0;
  }
  const [dir] = positionals(p, ["dir"]);
  const int = (name: string) => num(p, name, { integer: true, min: 1 });
  const t0 = performance.now();
  const bytes = await makeRandomLlama(resolve(dir), {
    layers: int("layers"),
    hiddenSize: int("hidden-size"),
    intermediateSize: int("intermediate-size"),
    heads: int("heads"),
    kvHeads: int("kv-heads"),
    vocabSize: int("vocab-size"),
    maxPositions: int("max-positions"),
    seed: num(p, "seed", { integer: true, min: 0 }),
    tokenizerDir: str(p, "tokenizer-from"),
    device: oneOf(p, "device", ["auto", "cpu", "cuda"] as const),
    format: oneOf(p, "format", ["fp16", "marlin"] as const),
  });
  const size = bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  io.stdout.write(`wrote ${resolve(dir)}: ${size} of random ${str(p, "format") ?? "fp16"} weights in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return 0;
}

export async function bench(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    io.stdout.write(BENCH_USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "serve") return benchServe(rest, io);
  if (sub === "compare") return benchCompare(rest, io);
  if (sub === "random-model") return benchRandomModel(rest, io);
  throw new UsageError(`unknown bench command ${sub} (serve, compare, random-model)`);
}
