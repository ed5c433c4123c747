// Reads a packed .tgz (ustar, with pax names) and checks it holds what a release means to ship.
import { readFileSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { manifestTargets } from "./manifest.mjs";

/** The files of a tarball: [{ path (without "package/"), size, data }]. */
export function readTarball(file) {
  const buf = gunzipSync(readFileSync(file));
  const out = [];
  let paxPath;
  for (let off = 0; off + 512 <= buf.length; ) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a, b) => h.subarray(a, b).toString("utf8").replace(/\0.*$/s, "");
    const size = Number.parseInt(str(124, 136).trim() || "0", 8);
    const type = String.fromCharCode(h[156] || 48);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      paxPath = /\d+ path=([^\n]*)\n/.exec(body.toString("utf8"))?.[1];
      continue;
    }
    if (type === "g") continue;
    const prefix = str(345, 500);
    const name = paxPath ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    paxPath = undefined;
    if (type === "0" || type === "\0") out.push({ path: name.replace(/^package\//, ""), size, data: body });
  }
  return out;
}

// What a tarball may hold: the manifest and docs, built JS with declarations and source maps (one
// folder deep: the engine's worker entry dist/parallel/), and
// for @marlin/kernel the native sources, its build scripts and the release prebuilds.
const SHIPPABLE = [
  /^package\.json$/,
  /^(README|CHANGELOG)\.md$/,
  /^LICENSE$/,
  /^dist\/([\w-]+\/)?[\w.-]+\.(js|cjs|d\.ts|d\.cts)$/,
  /^dist\/([\w-]+\/)?[\w.-]+\.(js|cjs)\.map$/,
  /^native\/(CMakeLists\.txt|package\.json)$/,
  /^native\/src\/[\w/.-]+\.(cpp|cu|h|cuh)$/,
  /^scripts\/[\w.-]+\.mjs$/,
  /^prebuilds\/[\w-]+\/marlin-[\w-]+\.(node|json)$/,
];
const NEVER = [/(^|\/)tests?\//, /\.(test|spec)\./, /^src\//, /(^|\/)(bench|standalone|build)\//, /tsconfig|tsup\.config|vitest\.config|test-results|\.pack-copies/];

/** Problems with a tarball (empty when it is fine), and a summary of what it holds. */
export function checkTarball(file, expectName) {
  const files = readTarball(file);
  const paths = new Set(files.map((f) => f.path));
  const problems = [];
  const pj = files.find((f) => f.path === "package.json");
  if (!pj) return { problems: ["no package.json"], files };
  const json = JSON.parse(pj.data.toString("utf8"));
  if (expectName && json.name !== expectName) problems.push(`name is ${json.name}, expected ${expectName}`);
  if (!paths.has("LICENSE")) problems.push("no LICENSE");
  if (json.license !== "Apache-2.0") problems.push(`license is ${json.license}`);
  if (!json.engines?.node) problems.push("no engines.node");
  for (const t of manifestTargets(json)) if (!paths.has(t)) problems.push(`${t} (named by package.json) is not in the tarball`);
  for (const [field, deps] of Object.entries({ dependencies: json.dependencies, optionalDependencies: json.optionalDependencies, peerDependencies: json.peerDependencies }))
    for (const [d, v] of Object.entries(deps ?? {})) if (String(v).startsWith("workspace:")) problems.push(`${field}.${d} is still ${v}`);
  for (const p of paths) {
    if (NEVER.some((r) => r.test(p))) problems.push(`ships ${p}`);
    else if (!SHIPPABLE.some((r) => r.test(p))) problems.push(`ships ${p}, which no rule allows`);
    if (p.endsWith(".map") && !paths.has(p.slice(0, -4))) problems.push(`ships ${p} without ${p.slice(0, -4)}`);
  }
  const unpacked = files.reduce((s, f) => s + f.size, 0);
  return { problems, files, json, packed: statSync(file).size, unpacked };
}
