// Reading the workspace's package manifests: which packages get published, and the files each
// manifest points at.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Every workspace package (packages/*, apps/*, tools/*) as { dir, json }. */
export function workspacePackages(root = repoRoot) {
  const out = [];
  for (const group of ["packages", "apps", "tools"]) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base).sort()) {
      const file = join(base, name, "package.json");
      if (existsSync(file)) out.push({ dir: join(base, name), json: JSON.parse(readFileSync(file, "utf8")) });
    }
  }
  return out;
}

/** The packages a release publishes, dependencies before dependents. */
export function publishedPackages(root = repoRoot) {
  const pkgs = workspacePackages(root).filter((p) => !p.json.private);
  const byName = new Map(pkgs.map((p) => [p.json.name, p]));
  const order = [];
  const seen = new Set();
  const visit = (p) => {
    if (seen.has(p.json.name)) return;
    seen.add(p.json.name);
    for (const d of Object.keys({ ...p.json.dependencies, ...p.json.optionalDependencies, ...p.json.peerDependencies }))
      if (byName.has(d)) visit(byName.get(d));
    order.push(p);
  };
  for (const p of pkgs) visit(p);
  return order;
}

/** Every path a manifest points at: main, module, types, bin and the export map's targets. */
export function manifestTargets(p) {
  const out = new Set([p.main, p.module, p.types].filter(Boolean));
  if (typeof p.bin === "string") out.add(p.bin);
  else for (const v of Object.values(p.bin ?? {})) out.add(v);
  const walk = (v) => {
    if (typeof v === "string") out.add(v);
    else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x);
  };
  walk(p.exports);
  return [...out].filter((t) => !t.includes("*")).map((t) => t.replace(/^\.\//, ""));
}
