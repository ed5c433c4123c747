// The release pipeline: `pnpm release [options]`.
//   1. --version: `changeset version` (versions and CHANGELOG.md files from .changeset/*.md)
//   2. build: every package's TypeScript (build-ts.mjs) and the kernel's prebuilds (build-prebuilds.mjs)
//   3. pack: every published package with pnpm into --out (default release/), each tarball checked
//      (files, exports, LICENSE, engines) and its size printed
//   4. publish: `npm publish` of each tarball to --registry (default: the npm config's registry)
// Options: --version, --skip-build, --cpu-only (no CUDA prebuild: test releases), --archs LIST,
//          --out DIR, --registry URL, --dry-run (stop after packing).
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { repoRoot } from "./lib/manifest.mjs";
import { packAll, packReport } from "./lib/pack.mjs";
import { npmRegistry, publishAll } from "./lib/publish.mjs";

const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const value = (f) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { cwd: repoRoot, stdio: "inherit", env: { ...process.env, ...env } });

if (flag("--version")) run("pnpm", ["changeset", "version"]);
if (!flag("--skip-build")) {
  run(process.execPath, ["tools/release/build-ts.mjs"]);
  const archs = value("--archs");
  run(process.execPath, ["tools/release/build-prebuilds.mjs", ...(flag("--cpu-only") ? ["--cpu-only"] : []), ...(archs ? ["--archs", archs] : [])]);
}
const tarballs = packAll(resolve(repoRoot, value("--out") ?? "release"), repoRoot);
console.log(packReport(tarballs));
if (tarballs.some((t) => t.problems.length)) {
  console.error("[release] some tarballs are not fit to publish (see PROBLEMS above)");
  process.exit(1);
}
if (flag("--dry-run")) process.exit(0);
publishAll(tarballs, npmRegistry(value("--registry")));
