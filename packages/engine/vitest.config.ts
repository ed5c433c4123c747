import { mergeConfig } from "vitest/config";
import shared from "../../vitest.shared";

// Whole-model tests (perplexity of eval.txt, 64-prompt batches) take minutes on a 2-core CPU.
export default mergeConfig(shared, { test: { testTimeout: 300_000, hookTimeout: 300_000 } });
