import { mergeConfig } from "vitest/config";
import shared from "../../vitest.shared";

// Real servers and child processes on loopback ports: one file at a time on a 2-core CPU.
export default mergeConfig(shared, { test: { fileParallelism: false, testTimeout: 300_000, hookTimeout: 300_000 } });
