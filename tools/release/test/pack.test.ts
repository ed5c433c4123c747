// The prepack guard and the tarball check: an unbuilt package is never packed; a tarball with test
// files, sources, orphan maps, no LICENSE or no engines is flagged.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { publishedPackages } from "../lib/manifest.mjs";
import { checkTarball } from "../lib/tarball.mjs";

const hooks = resolve(__dirname, "../pack-hooks.mjs");
const root = resolve(__dirname, "../../..");
const work = mkdtempSync(join(tmpdir(), "marlin-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fakePackage(name: string, json: object, files: Record<string, string> = {}): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `@marlin/${name}`, version: "1.0.0", license: "Apache-2.0", ...json }));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}
const hook = (dir: string, what: string) => spawnSync(process.execPath, [hooks, what], { cwd: dir, encoding: "utf8" });

describe("prepack guard", () => {
  const exportsMap = { main: "./dist/index.cjs", types: "./dist/index.d.ts", exports: { ".": { import: "./dist/index.js", require: "./dist/index.cjs" } }, files: ["dist"] };

  it("refuses a package that is not built, naming what is missing", () => {
    const r = hook(fakePackage("unbuilt", exportsMap), "pre");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refusing to pack @marlin\/unbuilt: it is not built \(missing dist\/index\.cjs, dist\/index\.d\.ts, dist\/index\.js\)/);
  });

  it("packs a built one with the repo's LICENSE, and takes the copy away after", () => {
    const dir = fakePackage("built", exportsMap, { "dist/index.js": "", "dist/index.cjs": "", "dist/index.d.ts": "" });
    expect(hook(dir, "pre").status).toBe(0);
    expect(readFileSync(join(dir, "LICENSE"), "utf8")).toBe(readFileSync(join(root, "LICENSE"), "utf8"));
    expect(hook(dir, "post").status).toBe(0);
    expect(existsSync(join(dir, "LICENSE"))).toBe(false);
  });

  it("refuses a package that ships prebuilds when there are none, and copies native sources", () => {
    const json = { main: "dist/index.js", files: ["dist", "native", "prebuilds/*/marlin-*.node"] };
    const dir = fakePackage("kernelish", json, { "dist/index.js": "" });
    const r = hook(dir, "pre");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no release prebuilds/);
    const ok = fakePackage("kernelish2", json, { "dist/index.js": "", "prebuilds/linux-x64/marlin-cpu.node": "x", "prebuilds/linux-x64/marlin-cpu.json": "{}" });
    expect(hook(ok, "pre").status).toBe(0);
    expect(existsSync(join(ok, "native", "CMakeLists.txt"))).toBe(true);
    expect(existsSync(join(ok, "native", "src", "kernel", "marlin", "standalone"))).toBe(false);
    expect(hook(ok, "post").status).toBe(0);
    expect(existsSync(join(ok, "native"))).toBe(false);
  });
});

describe("tarball check", () => {
  it("flags what a release does not mean to ship", () => {
    const dir = fakePackage("messy", { main: "dist/index.js", types: "dist/index.d.ts" }, {
      "dist/index.js": "x",
      "dist/old.js.map": "{}",
      "test/a.test.ts": "",
      "src/index.ts": "",
      "tsconfig.json": "{}",
    });
    const tgz = join(work, "messy.tgz");
    // npm's layout: everything under package/.
    execFileSync("tar", ["-czf", tgz, "--transform", "s,^\\.,package,", "-C", dir, "."]);
    const { problems } = checkTarball(tgz, "@marlin/messy");
    expect(problems).toEqual(
      expect.arrayContaining([
        "no LICENSE",
        "no engines.node",
        "dist/index.d.ts (named by package.json) is not in the tarball",
        "ships dist/old.js.map without dist/old.js",
        "ships test/a.test.ts",
        "ships src/index.ts",
        "ships tsconfig.json",
      ]),
    );
  });

  it("knows the published packages, dependencies first", () => {
    const names = publishedPackages(root).map((p: { json: { name: string } }) => p.json.name);
    expect(names.indexOf("@marlin/core")).toBeLessThan(names.indexOf("@marlin/kernel"));
    expect(names.indexOf("@marlin/kernel")).toBeLessThan(names.indexOf("@marlin/engine"));
    expect(names).not.toContain("@marlin/demo");
    expect(names).not.toContain("@marlin/release-tools");
  });
});
