// What the perplexity benches share (quality.mjs, sparse-quality.mjs): the repo root, the
// `--name value` options and the calibration options they all take, the tiny-llama fixture's
// eval and calibration text, a timestamped log on stderr, scoring a checkpoint with the engine's
// perplexity tool (CPU, 256-token windows) and writing the result under bench/results/.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LLM, perplexity } from "@marlin/engine";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
export const modelDir = process.env.MARLIN_FIXTURE_DIR ?? resolve(root, "../shared/models/tiny-llama");
export const samples = Number(arg("samples", 128));
export const seqlen = Number(arg("seqlen", 256));
export const seed = Number(arg("seed", 1234));
export const evalText = readFileSync(join(modelDir, "eval.txt"), "utf8").slice(0, Number(arg("eval-chars", 1e12)));
export const calib = join(modelDir, "calib.txt");
export const log = (...a) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${a.join(" ")}\n`);

/** The perplexity of the checkpoint in `dir` on eval.txt, loaded by the engine on the CPU. */
export async function ppl(dir) {
  const llm = await LLM.load(dir, { device: "cpu" });
  try {
    const r = await perplexity(llm, evalText);
    return { ppl: r.perplexity, nll: r.nll, scoredTokens: r.scoredTokens, seconds: r.seconds };
  } finally {
    llm.dispose();
  }
}

/** Writes `result` as bench/results/<file> at the repository root. */
export function writeResult(file, result) {
  mkdirSync(join(root, "bench/results"), { recursive: true });
  writeFileSync(join(root, "bench/results", file), `${JSON.stringify(result, null, 2)}\n`);
}
