/**
 * `marlin quantize <model-dir> --out <dir> [options]`: argument parsing and the exit codes of the
 * `marlin` command (0 done, 1 failed while running, 2 bad arguments / model / options — nothing
 * written, 130 interrupted — nothing left behind).
 */
import { resolve } from "node:path";
import { MarlinError } from "@marlin/core";
import { removePartials } from "./checkpoint.js";
import { QuantizeAbortedError, type QuantizeRunOptions, quantizeModel } from "./model.js";
import { type QuantizeModelOptions, resolveQuantizeOptions } from "./options.js";
import type { ProgressSink } from "./progress.js";

export class UsageError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_USAGE", message);
  }
}

export const USAGE = `usage: marlin quantize <model-dir> --out <dir> [options]

  --bits 4|8              bits per weight (4)
  --group-size N          -1 (per-channel), 32, 64 or 128 (128)
  --act-order             quantize inputs by descending Hessian diagonal (desc_act)
  --static-groups         with --act-order: fix group params first (keeps g_idx monotone)
  --sym | --asym          symmetric (default) or with zero points
  --damp F                relative Hessian damping (0.1)
  --clip | --no-clip      Hessian-weighted range search of each group's scale (on for gptq)
                          (the defaults are the reference scripts' best recipe, damping 0.1 with
                          the search; --damp 0.01 --no-clip gives the classic GPTQ recipe)
  --sparsity 2:4          prune 2 of every 4 consecutive inputs of each output (gptq, no
                          --act-order); written as dense tensors with "sparsity" in the config
  --prune sparsegpt|magnitude
                          with --sparsity: choose the 2:4 mask in the GPTQ pass from the updated
                          weights and H^-1 (sparsegpt, default) or keep the 2 largest |w| (magnitude)
  --calib FILE            calibration text, one passage per line (required for gptq)
  --samples N             calibration windows (128)
  --seqlen N              tokens per window (min(2048, max_position_embeddings))
  --seed N                seed of the calibration windows (0)
  --method gptq|rtn       GPTQ (default) or round-to-nearest
  --format marlin|gptq    output tensors: Marlin (default) or GPTQ v1 for other tools
  --device cpu|cuda       where the layer passes and GPTQ run (cpu)
  --force                 replace a non-empty output directory
  --quiet                 no progress bar
`;

export interface CliIo {
  stdout: ProgressSink;
  stderr: ProgressSink;
  /** Signals that interrupt the run (the CLI wires SIGINT/SIGTERM here). */
  signal?: AbortSignal;
}

interface Parsed {
  modelDir: string;
  outDir: string;
  opts: QuantizeModelOptions;
  quiet: boolean;
}

const VALUE_FLAGS = new Set(["--out", "--bits", "--group-size", "--damp", "--calib", "--samples", "--seqlen", "--seed", "--method", "--format", "--device", "--sparsity", "--prune"]);
const BOOL_FLAGS = ["--act-order", "--static-groups", "--sym", "--asym", "--force", "--quiet", "--clip", "--no-clip"];

function num(flag: string, v: string, integer: boolean): number {
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x) || (integer && !Number.isInteger(x))) throw new UsageError(`${flag} needs ${integer ? "an integer" : "a number"}, got "${v}"`);
  return x;
}

export function parseQuantizeArgs(args: string[]): Parsed {
  const pos: string[] = [];
  const vals = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    let a = args[i];
    let v: string | undefined;
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (VALUE_FLAGS.has(a)) {
      if (v === undefined) {
        if (i + 1 >= args.length) throw new UsageError(`${a} needs a value`);
        v = args[++i];
      }
      vals.set(a, v);
    } else if (BOOL_FLAGS.includes(a)) {
      if (v !== undefined) throw new UsageError(`${a} takes no value`);
      flags.add(a);
    } else if (a.startsWith("-") && a !== "-") {
      throw new UsageError(`unknown option ${a}`);
    } else pos.push(a);
  }
  if (pos.length !== 1) throw new UsageError(pos.length === 0 ? "missing <model-dir>" : `unexpected argument ${pos[1]}`);
  const out = vals.get("--out");
  if (!out) throw new UsageError("missing --out <dir>");
  if (flags.has("--sym") && flags.has("--asym")) throw new UsageError("--sym and --asym exclude each other");
  if (flags.has("--clip") && flags.has("--no-clip")) throw new UsageError("--clip and --no-clip exclude each other");
  const opts: QuantizeModelOptions = {};
  const bits = vals.get("--bits");
  if (bits !== undefined) {
    const b = num("--bits", bits, true);
    if (b !== 4 && b !== 8) throw new UsageError(`--bits must be 4 or 8, got ${bits}`);
    opts.bits = b;
  }
  if (vals.has("--group-size")) opts.groupSize = num("--group-size", vals.get("--group-size")!, true);
  if (vals.has("--damp")) opts.percDamp = num("--damp", vals.get("--damp")!, false);
  if (vals.has("--samples")) opts.nsamples = num("--samples", vals.get("--samples")!, true);
  if (vals.has("--seqlen")) opts.seqlen = num("--seqlen", vals.get("--seqlen")!, true);
  if (vals.has("--seed")) opts.seed = num("--seed", vals.get("--seed")!, true);
  if (vals.has("--calib")) opts.calib = vals.get("--calib");
  const method = vals.get("--method");
  if (method !== undefined) {
    if (method !== "gptq" && method !== "rtn") throw new UsageError(`--method must be gptq or rtn, got ${method}`);
    opts.method = method;
  }
  const format = vals.get("--format");
  if (format !== undefined) {
    if (format !== "marlin" && format !== "gptq") throw new UsageError(`--format must be marlin or gptq, got ${format}`);
    opts.format = format;
  }
  const device = vals.get("--device");
  if (device !== undefined) {
    if (device !== "cpu" && device !== "cuda") throw new UsageError(`--device must be cpu or cuda, got ${device}`);
    opts.device = device;
  }
  const sparsity = vals.get("--sparsity");
  if (sparsity !== undefined) {
    if (sparsity !== "2:4") throw new UsageError(`--sparsity must be 2:4, got ${sparsity}`);
    opts.sparsity = sparsity;
  }
  const prune = vals.get("--prune");
  if (prune !== undefined) {
    if (prune !== "sparsegpt" && prune !== "magnitude") throw new UsageError(`--prune must be sparsegpt or magnitude, got ${prune}`);
    if (sparsity === undefined) throw new UsageError("--prune needs --sparsity 2:4");
    opts.prune = prune;
  }
  if (flags.has("--clip")) opts.clip = true;
  if (flags.has("--no-clip")) opts.clip = false;
  if (flags.has("--act-order")) opts.actOrder = true;
  if (flags.has("--static-groups")) opts.staticGroups = true;
  if (flags.has("--asym")) opts.symmetric = false;
  if (flags.has("--force")) opts.force = true;
  return { modelDir: pos[0], outDir: out, opts, quiet: flags.has("--quiet") };
}

/**
 * After SIGINT/SIGTERM the run unwinds at its next check (between steps) and removes its partial
 * output; a step that does not end within this time (a long read) is abandoned: the CLI exits.
 */
export const ABORT_GRACE_MS = 5000;

/** `work`'s result, or "abandoned" when it is still running ABORT_GRACE_MS after `signal` aborts. */
function unlessAbandoned<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<{ r: T } | "abandoned"> {
  if (!signal) return work.then((r) => ({ r }));
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => done("abandoned"), ABORT_GRACE_MS);
  };
  let done: (v: "abandoned") => void = () => {};
  const late = new Promise<"abandoned">((d) => {
    done = d;
  });
  if (signal.aborted) arm();
  else signal.addEventListener("abort", arm, { once: true });
  return Promise.race([work.then((r) => ({ r })), late]).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", arm);
  });
}

function oneLine(e: unknown): string {
  if (e instanceof MarlinError) return `${e.message} [${e.code}]`;
  return e instanceof Error ? e.message : String(e);
}

/** Runs the CLI on argv (without node and the script); returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.stdout.write(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd !== "quantize") {
    io.stderr.write(`marlin: unknown command ${cmd}\n${USAGE}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(USAGE);
    return 0;
  }
  let p: Parsed;
  try {
    p = parseQuantizeArgs(rest);
    // Every check that needs no work runs here, so a refusal writes nothing.
    resolveQuantizeOptions(p.modelDir, p.outDir, p.opts);
  } catch (e) {
    io.stderr.write(`marlin quantize: ${oneLine(e)}\n`);
    if (e instanceof UsageError) io.stderr.write("run `marlin quantize --help` for the options\n");
    return 2;
  }
  try {
    const run: QuantizeRunOptions = { ...p.opts, progress: p.quiet ? false : io.stderr, signal: io.signal };
    if (!p.quiet) io.stderr.write(`marlin quantize: loading ${p.modelDir}\n`);
    const outcome = await unlessAbandoned(quantizeModel(p.modelDir, p.outDir, run), io.signal);
    if (outcome === "abandoned") {
      await removePartials(resolve(p.outDir), "own").catch(() => undefined);
      io.stderr.write(`\nmarlin quantize: interrupted; stopped without waiting ${ABORT_GRACE_MS / 1000} s more for the step in flight; nothing was written\n`);
      return 130;
    }
    const { r } = outcome;
    io.stdout.write(`wrote ${r.outDir} (${r.options.method}, ${r.options.bits}-bit, group ${r.options.groupSize}${r.options.actOrder ? ", act-order" : ""}${r.options.sparsity ? `, ${r.options.sparsity} ${r.options.prune}` : ""}, ${r.options.format} format) in ${r.seconds.toFixed(1)} s\n`);
    return 0;
  } catch (e) {
    if (e instanceof QuantizeAbortedError) {
      io.stderr.write(`\nmarlin quantize: ${e.message}\n`);
      return 130;
    }
    io.stderr.write(`\nmarlin quantize: failed: ${oneLine(e)}\n`);
    return 1;
  }
}
