/**
 * The `marlin` command's dispatcher. Exit codes: 0 done, 1 failed while running, 2 bad arguments
 * or input (nothing done), 130 interrupted.
 */
import { createRequire } from "node:module";
import { MarlinError } from "@marlin/core";
import { type Io, UsageError } from "./args.js";
import { bench } from "./commands/bench.js";
import { generate } from "./commands/generate.js";
import { quantize } from "./commands/quantize.js";
import { serve } from "./commands/serve.js";

export const USAGE = `usage: marlin <command> [options]     (marlin <command> --help for its options)

  serve <model-dir>                 an OpenAI-compatible server (completions, chat, streaming, /metrics)
  generate <model-dir> "prompt"     one completion, streamed to stdout
  quantize <model-dir> --out <dir>  GPTQ or round-to-nearest into a Marlin checkpoint
  bench serve --base-url URL        serving benchmark (TTFT, TPOT, ITL, throughput) like vllm bench serve
  bench compare <a.json> <b.json>   runs side by side, one chart
  bench random-model <dir>          a Llama-2-7B-shaped model with random weights

  --version                         the version of @marlin/cli
`;

export function version(): string {
  // dist/main.js and src/cli.ts both sit one folder below package.json.
  return createRequire(import.meta.url)("../package.json").version;
}

const COMMANDS: Record<string, (args: string[], io: Io) => Promise<number>> = { serve, generate, quantize, bench };

function oneLine(e: unknown): string {
  if (e instanceof MarlinError) return `${e.message} [${e.code}]`;
  return e instanceof Error ? e.message : String(e);
}

/** Runs `marlin` on argv (without node and the script); resolves with the exit code. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.stdout.write(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version" || cmd === "-V" || cmd === "version") {
    io.stdout.write(`marlin ${version()} (node ${process.version})\n`);
    return 0;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    io.stderr.write(`marlin: unknown command ${cmd}\nrun \`marlin --help\` for the commands\n`);
    return 2;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    const usage = e instanceof UsageError;
    // Typed input errors (bad model directory, bad options) are the user's to fix: exit 2.
    const input = usage || (e instanceof MarlinError && ["ERR_MARLIN_FORMAT", "ERR_MARLIN_INVALID_ARGUMENT", "ERR_MARLIN_NO_DEVICE"].includes(e.code));
    io.stderr.write(`marlin ${cmd}: ${oneLine(e)}\n`);
    if (usage) io.stderr.write(`run \`marlin ${cmd} --help\` for the options\n`);
    return input ? 2 : 1;
  }
}
