import { mergeConfig } from "vitest/config";
import shared from "../../vitest.shared";

// Real servers on loopback ports, one model each: run the files one after another on a 2-core CPU.
export default mergeConfig(shared, { test: { fileParallelism: false, testTimeout: 300_000, hookTimeout: 300_000 } });
