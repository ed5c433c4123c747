// A Llama-architecture model directory with random fp16 weights (now `makeRandomLlama` of
// @marlin/engine, also behind `marlin bench random-model`), and a random-text calibration file,
// for speed runs at real shapes (nothing committed: both are made where the run happens).
import { writeFileSync } from "node:fs";
import { Rng } from "@marlin/core";

export { llama2Config, makeRandomLlama } from "@marlin/engine";

/** `lines` lines of random lowercase words (seeded): calibration text with no structure at all. */
export function writeRandomText(file, { lines = 12000, wordsPerLine = 40, seed = 1 } = {}) {
  const rng = new Rng(seed);
  const out = [];
  for (let l = 0; l < lines; l++) {
    const words = [];
    const count = rng.int(wordsPerLine / 2, wordsPerLine * 1.5);
    for (let i = 0; i < count; i++) {
      let w = "";
      const len = rng.int(1, 10);
      for (let c = 0; c < len; c++) w += String.fromCharCode(97 + rng.int(0, 26));
      words.push(w);
    }
    out.push(`${words.join(" ")}.`);
  }
  writeFileSync(file, `${out.join("\n")}\n`);
}
