import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "vitest";
import { LLM, perplexity } from "../src/index.js";
import { tinyLlamaDir } from "./helpers.js";

test("smoke", async () => {
  let t0 = performance.now();
  const llm = await LLM.load(tinyLlamaDir(), { device: "cpu" });
  console.log("load ms", performance.now() - t0);
  t0 = performance.now();
  const r = await llm.generate(["The man went to the", "I feel"], { maxTokens: 20 });
  console.log(performance.now() - t0, r.map((x) => [x.text, x.finishReason, x.tokenIds.length]));
  const text = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8");
  t0 = performance.now();
  const p = await perplexity(llm, text);
  console.log(p, performance.now() - t0);
});
