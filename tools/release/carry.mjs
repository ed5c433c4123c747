// Makes .carry/release.tar.xz for tools/gpu/release-check.sh (no Node, npm or network on the GPU
// machine): npm, Verdaccio with the store folders it needs, the release tarballs of @marlin/core,
// format and kernel (as plain .tar: xz packs the CUDA fatbin far better than gzip), and a Verdaccio
// storage holding the kernel's third-party dependencies (filled here through the uplink by one
// `npm install @marlin/kernel`, which also checks that install on this machine).
//   node tools/release/carry.mjs [carry-dir]     (tools/gpu/prepare.sh --release runs it)
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { storeClosure } from "./lib/closure.mjs";
import { repoRoot } from "./lib/manifest.mjs";
import { packAll, packReport } from "./lib/pack.mjs";

const carry = resolve(process.argv[2] ?? join(repoRoot, ".carry"));
const plat = `${process.platform}-${process.arch}`;
const prebuilds = join(repoRoot, "packages", "kernel", "prebuilds", plat);
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: repoRoot, stdio: "inherit", ...opts });

// 1. Release prebuilds with sm_90 in the CUDA fatbin (built when missing).
const metaFile = join(prebuilds, "marlin-cuda.json");
const meta = existsSync(metaFile) ? JSON.parse(readFileSync(metaFile, "utf8")) : undefined;
if (!meta || !/(^|;)90/.test(meta.cudaArchs ?? "")) sh(process.execPath, ["tools/release/build-prebuilds.mjs"]);
console.log(`[carry] CUDA prebuild: ${JSON.parse(readFileSync(metaFile, "utf8")).cudaArchs}`);

// 2. Tarballs of what `npm install @marlin/kernel` brings.
const work = mkdtempSync(join(tmpdir(), "marlin-carry-"));
const stage = join(work, "stage", ".carry-release");
const tarballs = packAll(join(work, "all"), repoRoot);
console.log(packReport(tarballs));
const needed = tarballs.filter((t) => ["@marlin/core", "@marlin/format", "@marlin/kernel"].includes(t.name));
mkdirSync(join(work, "kernel-set"));
mkdirSync(join(stage, "tarballs"), { recursive: true });
const sums = [];
for (const t of needed) {
  const base = relative(join(work, "all"), t.file);
  sh("cp", [t.file, join(work, "kernel-set", base)]);
  const tar = gunzipSync(readFileSync(t.file));
  writeFileSync(join(stage, "tarballs", base.replace(/\.tgz$/, ".tar")), tar);
  sums.push(`${createHash("sha256").update(tar).digest("hex")}  ${base.replace(/\.tgz$/, ".tar")}`);
}
writeFileSync(join(stage, "tarballs", "SHA256SUMS"), `${sums.join("\n")}\n`);

// 3. The storage: publish, install the kernel here (CPU) through the uplink, keep third-party packages.
sh(process.execPath, ["tools/release/registry-check.mjs", "--tarballs", join(work, "kernel-set"), "--steps", "kernel", "--save-storage", join(stage, "storage"), "--timeout", "900"]);

// 4. npm (without its docs) and Verdaccio's store folders.
const npmDir = join(execFileSync("npm", ["root", "-g"], { encoding: "utf8" }).trim(), "npm");
sh("cp", ["-a", npmDir, join(stage, "npm")]);
rmSync(join(stage, "npm", "docs"), { recursive: true, force: true });
rmSync(join(stage, "npm", "man"), { recursive: true, force: true });
const verdaccio = join(repoRoot, "tools", "release", "node_modules", "verdaccio");
const ids = storeClosure([execFileSync("realpath", [verdaccio], { encoding: "utf8" }).trim()]);
const list = execFileSync("find", [...[...ids].map((id) => `node_modules/.pnpm/${id}`), "(", "-type", "f", "-o", "-type", "l", ")"], { cwd: repoRoot, encoding: "utf8", maxBuffer: 256 << 20 })
  .split("\n")
  .filter((p) => p && !/\.(d\.ts|d\.cts|d\.mts|md|map)$/.test(p));
list.push("tools/release/node_modules/verdaccio");
writeFileSync(join(work, "list"), `${list.join("\n")}\n`);

mkdirSync(carry, { recursive: true });
const out = join(carry, "release.tar.xz");
execFileSync("sh", ["-c", `tar -c -C "${repoRoot}" -T "${join(work, "list")}" -C "${join(work, "stage")}" .carry-release | xz -T2 -6 > "${out}"`], { stdio: "inherit" });
rmSync(work, { recursive: true, force: true });
console.log(`[carry] ${out}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB (${readdirSync(carry).join(", ")})`);
