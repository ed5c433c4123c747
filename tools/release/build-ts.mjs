// Builds the TypeScript of every published package, dependencies first, without touching the local
// native build (the kernel's `build:ts`; the release addons come from build-prebuilds.mjs).
import { execFileSync } from "node:child_process";
import { publishedPackages } from "./lib/manifest.mjs";

for (const p of publishedPackages()) {
  const script = p.json.scripts?.["build:ts"] ? "build:ts" : "build";
  console.log(`[build-ts] ${p.json.name}: pnpm run ${script}`);
  execFileSync("pnpm", ["run", "--silent", script], { cwd: p.dir, stdio: ["ignore", "ignore", "inherit"] });
}
