// Packs every published package with pnpm (which runs each package's prepack guard and turns
// workspace:* into versions) and checks each tarball.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { publishedPackages } from "./manifest.mjs";
import { checkTarball } from "./tarball.mjs";

/** [{ name, version, file, packed, unpacked, problems }] in publish order. */
export function packAll(outDir, root) {
  mkdirSync(outDir, { recursive: true });
  const out = [];
  for (const p of publishedPackages(root)) {
    const before = new Set(readdirSync(outDir));
    execFileSync("pnpm", ["pack", "--pack-destination", outDir], { cwd: p.dir, stdio: ["ignore", "ignore", "inherit"] });
    const made = readdirSync(outDir).filter((f) => f.endsWith(".tgz") && !before.has(f));
    const file = join(outDir, made.find((f) => f.endsWith(`-${p.json.version}.tgz`)) ?? made[0]);
    const r = checkTarball(file, p.json.name);
    out.push({ name: p.json.name, version: p.json.version, file, packed: r.packed, unpacked: r.unpacked, problems: r.problems, count: r.files.length });
  }
  return out;
}

const mib = (b) => `${(b / 2 ** 20).toFixed(2)} MiB`;

/** One line per tarball: name, packed and unpacked size, file count, problems. */
export function packReport(tarballs) {
  return tarballs
    .map((t) => `${t.name.padEnd(16)} ${mib(t.packed).padStart(10)} packed ${mib(t.unpacked).padStart(10)} unpacked ${String(t.count).padStart(4)} files${t.problems.length ? `  PROBLEMS: ${t.problems.join("; ")}` : ""}`)
    .join("\n");
}
