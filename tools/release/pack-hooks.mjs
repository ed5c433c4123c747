// The prepack / postpack scripts of every published package (run by `pnpm pack` / `pnpm publish` in
// the package folder): `node ../../tools/release/pack-hooks.mjs pre|post`.
//   pre:  refuses to pack an unbuilt package (every file its package.json points at must exist);
//         @marlin/kernel also needs release prebuilds; copies the repo's LICENSE in, and the native
//         sources when the package ships them ("native" in `files`), so a tarball builds from source.
//   post: removes what pre copied in (listed in .pack-copies).
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { manifestTargets, repoRoot as root } from "./lib/manifest.mjs";

const pkgDir = process.cwd();
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const ledger = join(pkgDir, ".pack-copies");

function refuse(message) {
  console.error(`[pack] refusing to pack ${pkg.name}: ${message}`);
  process.exit(1);
}

function checkPrebuilds() {
  const dir = join(pkgDir, "prebuilds");
  const found = [];
  for (const plat of existsSync(dir) ? readdirSync(dir) : [])
    for (const f of readdirSync(join(dir, plat))) {
      if (!/^marlin-.*\.node$/.test(f)) continue;
      if (!existsSync(join(dir, plat, f.replace(/\.node$/, ".json")))) refuse(`prebuilds/${plat}/${f} has no .json beside it`);
      found.push(`${plat}/${f}`);
    }
  if (!found.length) refuse("no release prebuilds in prebuilds/ (run `node tools/release/build-prebuilds.mjs` first)");
}

function pre() {
  const missing = manifestTargets(pkg).filter((t) => !existsSync(join(pkgDir, t)));
  if (missing.length) refuse(`it is not built (missing ${missing.join(", ")}); run \`pnpm --filter ${pkg.name} build\``);
  const files = pkg.files ?? [];
  if (files.some((f) => f.startsWith("prebuilds"))) checkPrebuilds();
  const copies = [];
  if (!existsSync(join(pkgDir, "LICENSE"))) {
    cpSync(join(root, "LICENSE"), join(pkgDir, "LICENSE"));
    copies.push("LICENSE");
  }
  if (files.includes("native")) {
    if (existsSync(join(pkgDir, "native"))) rmSync(join(pkgDir, "native"), { recursive: true });
    const src = join(root, "native");
    // Sources and the CMake project only: no build trees, no standalone harnesses, no generators
    // (hopper/gen_wgmma.py writes a header that is itself shipped).
    cpSync(src, join(pkgDir, "native"), {
      recursive: true,
      filter: (p) => {
        const rel = relative(src, p);
        if (/(^|\/)(build[^/]*|standalone)(\/|$)/.test(rel)) return false;
        return statSync(p).isDirectory() || /(^|\/)(CMakeLists\.txt|package\.json)$|\.(cpp|cu|h|cuh)$/.test(rel);
      },
    });
    copies.push("native");
  }
  writeFileSync(ledger, copies.join("\n"));
}

function post() {
  if (!existsSync(ledger)) return;
  for (const p of readFileSync(ledger, "utf8").split("\n").filter(Boolean)) rmSync(join(pkgDir, p), { recursive: true, force: true });
  rmSync(ledger);
}

const what = process.argv[2];
if (what === "pre") pre();
else if (what === "post") post();
else if (what !== undefined) refuse(`unknown hook ${what} (pre or post)`);
