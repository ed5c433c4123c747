// A consumer of @marlin/engine: loads a model directory (argv[2]) on the CPU and generates greedily.
// Prints one line: GENERATE {json}.
import { LLM } from "@marlin/engine";

const llm = await LLM.load(process.argv[2], { device: "cpu" });
const [r] = await llm.generate(["Once upon a time"], { temperature: 0, maxTokens: 24 });
llm.dispose();
console.log(`GENERATE ${JSON.stringify({ text: r.text, tokens: r.tokenIds.length, finishReason: r.finishReason })}`);
process.exit(r.tokenIds.length > 0 && r.text.trim().length > 0 ? 0 : 1);
