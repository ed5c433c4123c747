import { defineConfig } from "tsup";

// The `marlin` command: one ESM entry with a shebang; the library is reachable for tests and scripts.
export default defineConfig({
  entry: { main: "src/main.ts", index: "src/index.ts" },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts" } },
  clean: true,
  sourcemap: true,
  target: "node20",
  banner: { js: "#!/usr/bin/env node" },
});
