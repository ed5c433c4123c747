// The vitest settings every package uses; each package's vitest.config.ts extends this.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The JSON report feeds tools/test-summary.mjs (the closing line of the test command).
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
  },
});
