// Which folders of pnpm's store (node_modules/.pnpm/<id>) a set of packages needs: in pnpm's layout
// a package's dependencies are the symlinks beside it in .pnpm/<id>/node_modules.
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { repoRoot, workspacePackages } from "./manifest.mjs";

const store = join(repoRoot, "node_modules", ".pnpm");

/** The store id of a package folder, or undefined for a workspace package. */
function storeId(realDir) {
  const rel = relative(store, realDir);
  return rel.startsWith("..") ? undefined : rel.split(sep)[0];
}

/** Packages linked in a node_modules folder: [name, realpath]. */
function linked(nodeModules) {
  const out = [];
  for (const e of existsSync(nodeModules) ? readdirSync(nodeModules) : []) {
    if (e.startsWith(".")) continue;
    const names = e.startsWith("@") ? readdirSync(join(nodeModules, e)).map((s) => `${e}/${s}`) : [e];
    for (const n of names) {
      try {
        out.push([n, realpathSync(join(nodeModules, n))]);
      } catch {}
    }
  }
  return out;
}

/** Store ids reachable from the given package folders (realpaths inside the store). */
export function storeClosure(roots) {
  const seen = new Set();
  const queue = roots.map(storeId).filter(Boolean);
  while (queue.length) {
    const id = queue.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    for (const [, real] of linked(join(store, id, "node_modules"))) {
      const dep = storeId(real);
      if (dep && !seen.has(dep)) queue.push(dep);
    }
  }
  return seen;
}

/** The store folders of a workspace package's external dependencies (all kinds). */
export function packageRoots(dir) {
  const json = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const names = new Set(Object.keys({ ...json.dependencies, ...json.devDependencies, ...json.optionalDependencies }));
  return linked(join(dir, "node_modules"))
    .filter(([n, real]) => names.has(n) && storeId(real))
    .map(([, real]) => real);
}

/** Store ids that only the workspace folders matching `only` need (the others' closure removed). */
function onlyIds(only) {
  const dirs = workspacePackages().map((p) => p.dir);
  const mine = storeClosure(dirs.filter(only).flatMap(packageRoots));
  const rest = storeClosure([repoRoot, ...dirs.filter((d) => !only(d))].flatMap(packageRoots));
  return [...mine].filter((id) => !rest.has(id));
}

/** Store ids only the release tooling (tools/release) needs: left out of the GPU test carry. */
export function releaseOnlyIds() {
  return onlyIds((d) => d.endsWith(join("tools", "release")));
}

/** Store ids only the release tooling, the server and the apps need: left out of a lean carry
 * (engine, kernel, sparse and gptq checks with the model, under the 64 MiB carry limit). */
export function leanOnlyIds() {
  return onlyIds((d) => {
    const rel = relative(repoRoot, d).split(sep).join("/");
    return rel === "tools/release" || rel === "packages/server" || rel.startsWith("apps/");
  });
}

// `node tools/release/lib/closure.mjs --release-only | --lean`: one store path per line, for grep -F.
const flag = process.argv[2];
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(new URL(import.meta.url).pathname) && (flag === "--release-only" || flag === "--lean"))
  for (const id of flag === "--lean" ? leanOnlyIds() : releaseOnlyIds()) console.log(`node_modules/.pnpm/${id}/`);
