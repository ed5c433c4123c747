/** `marlin generate <model-dir> "prompt"`: one completion, streamed to stdout as it is generated. */
import { AsyncEngine, LLM, type RequestOutput, type SamplingParams } from "@marlin/engine";
import { defined, type Io, modelDir, num, oneOf, parse, positionals, UsageError } from "../args.js";

export const GENERATE_USAGE = `usage: marlin generate <model-dir> "prompt" [options]

  --max-tokens N         tokens to generate (64)
  --temperature T        0 = greedy (0)
  --top-p P              nucleus mass in (0, 1] (1)
  --top-k K              keep the K most likely tokens; 0 = off (0)
  --seed N               makes sampling reproducible
  --stop TEXT            stop before TEXT (repeatable)
  --ignore-eos           keep going past the end-of-sequence token
  --device auto|cpu|cuda where the model runs (auto)
  --tensor-parallel-size N  ranks the model is split over (1; CPU: worker threads, CUDA: one GPU each)

The text goes to stdout; timings (time to first token, per output token) to stderr.
`;

const OPTIONS = {
  "max-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  "ignore-eos": { type: "boolean" },
  device: { type: "string" },
  "tensor-parallel-size": { type: "string" },
} as const;

export async function generate(args: string[], io: Io): Promise<number> {
  const p = parse(args, OPTIONS);
  if (p.values.help) {
    io.stdout.write(GENERATE_USAGE);
    return 0;
  }
  const [dirArg, prompt] = positionals(p, ["model-dir", "prompt"]);
  const dir = modelDir(dirArg);
  if (prompt.length === 0) throw new UsageError("the prompt is empty");
  const stop = p.values.stop as string[] | undefined;
  const params: SamplingParams = defined({
    maxTokens: num(p, "max-tokens", { integer: true, min: 1 }) ?? 64,
    temperature: num(p, "temperature", { min: 0 }),
    topP: num(p, "top-p", { min: Number.MIN_VALUE, max: 1 }),
    topK: num(p, "top-k", { integer: true, min: -1 }),
    seed: num(p, "seed", { integer: true, min: 0 }),
    stop,
    ignoreEos: p.values["ignore-eos"] === true ? true : undefined,
  });
  const device = oneOf(p, "device", ["auto", "cpu", "cuda"] as const) ?? "auto";
  const tensorParallelSize = num(p, "tensor-parallel-size", { integer: true, min: 1 });
  const llm = await LLM.load(dir, defined({ device, maxNumSeqs: 1, tensorParallelSize }));
  try {
    if (!llm.tokenizer) throw new UsageError(`${dir} has no tokenizer.json: text prompts need one`);
    const engine = new AsyncEngine(llm.engine, { idleTimeoutMs: Number.POSITIVE_INFINITY });
    let last: RequestOutput | undefined;
    for await (const o of engine.generate(prompt, params, { signal: io.signal })) {
      io.stdout.write(o.delta.text);
      last = o;
    }
    io.stdout.write("\n");
    if (last) {
      const m = last.metrics;
      const ms = (v: number | undefined) => (v === undefined ? "-" : `${v.toFixed(1)} ms`);
      io.stderr.write(
        `marlin generate: ${last.promptTokenIds.length} prompt + ${last.tokenIds.length} output tokens on ${llm.device}, finish ${last.finishReason}; first token ${ms(m.ttftMs)}, per output token ${ms(m.tpotMs)}\n`,
      );
    }
    return io.signal?.aborted ? 130 : 0;
  } finally {
    llm.dispose();
  }
}
