// Perplexity of a text file in fixed windows (field notes §8 protocol: each line with BOS,
// followed by EOS; consecutive non-overlapping windows; every token after a window's first scored).
//   node scripts/perplexity.mjs <model-dir> <text-file> [--window 256] [--device cpu|cuda|auto] [--keep-tail]
import { readFileSync } from "node:fs";
import { LLM, perplexity } from "../dist/index.js";

const [dir, file, ...rest] = process.argv.slice(2);
if (!dir || !file) {
  console.error("usage: node scripts/perplexity.mjs <model-dir> <text-file> [--window 256] [--device cpu|cuda|auto] [--keep-tail]");
  process.exit(2);
}
const flag = (name, dflt) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : dflt;
};
const llm = await LLM.load(dir, { device: flag("device", "auto") });
const r = await perplexity(llm, readFileSync(file, "utf8"), {
  window: Number(flag("window", 256)),
  keepTail: rest.includes("--keep-tail"),
  onProgress: (d, t) => process.stderr.write(`\r${d}/${t} windows`),
});
process.stderr.write("\n");
console.log(JSON.stringify({ device: llm.device, ...r }, null, 2));
llm.dispose();
