// Publishes packed tarballs with npm, skipping versions the registry already has.
import { execFileSync, spawnSync } from "node:child_process";

/** npm's registry: --registry when given, else the npm config's. */
export function npmRegistry(explicit) {
  return explicit ?? execFileSync("npm", ["config", "get", "registry"], { encoding: "utf8" }).trim();
}

function published(name, version, args) {
  const r = spawnSync("npm", ["view", `${name}@${version}`, "version", ...args], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() === version;
}

/** `npm publish <tgz>` for each tarball in order; extra npm args (e.g. --userconfig) pass through. */
export function publishAll(tarballs, registry, extra = [], log = console.log) {
  const args = ["--registry", registry, ...extra];
  for (const t of tarballs) {
    if (published(t.name, t.version, args)) {
      log(`[publish] ${t.name}@${t.version} is already on ${registry}`);
      continue;
    }
    execFileSync("npm", ["publish", t.file, "--access", "public", "--loglevel", "warn", ...args], { stdio: ["ignore", "ignore", "inherit"] });
    log(`[publish] ${t.name}@${t.version} -> ${registry}`);
  }
}
