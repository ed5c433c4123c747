// The tsup settings every library package uses: ESM + CJS with type declarations, for Node 20.
import { defineConfig, type Options } from "tsup";

export function libraryConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm", "cjs"],
    dts: true,
    clean: true,
    sourcemap: true,
    // import.meta.url in the CJS build (e.g. createRequire, finding files beside the package).
    shims: true,
    target: "node20",
    ...overrides,
  });
}
