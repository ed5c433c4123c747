// Callers hold prepared layers from the registry and never switch on implementation ids: no file of
// the engine, GPTQ or the apps mentions the id of an implementation another package registers.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { registry } from "@marlin/core";
import "@marlin/kernel"; // registers the kernel package's implementations
import "@marlin/sparse"; // and the 2:4 ones
import { describe, expect, test } from "vitest";

const root = resolve(__dirname, "../../..");
const DIRS = ["packages/engine/src", "packages/engine/test", "packages/engine/bench", "packages/gptq/src", "packages/gptq/test", "packages/gptq/bench", "apps"];

function files(dir: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    return [];
  }
  if (!st.isDirectory()) return /\.(ts|mts|cts|mjs|js)$/.test(dir) ? [dir] : [];
  return readdirSync(dir)
    .filter((n) => n !== "node_modules" && n !== "dist")
    .flatMap((n) => files(join(dir, n)));
}

describe("implementation ids stay inside the package that registers them", () => {
  test("engine, GPTQ and apps name no implementation id", () => {
    const ids = registry.list().map((i) => i.id);
    expect(ids.length).toBeGreaterThan(3);
    const hits: string[] = [];
    const pattern = /"(marlin|cublas|dense)\.(cpu|cuda|fp16)"/;
    for (const f of DIRS.flatMap((d) => files(join(root, d)))) {
      const text = readFileSync(f, "utf8");
      for (const id of ids) if (text.includes(`"${id}"`) || text.includes(`'${id}'`) || text.includes(`\`${id}\``)) hits.push(`${f}: ${id}`);
      if (pattern.test(text)) hits.push(`${f}: ${pattern.exec(text)?.[0]}`);
    }
    expect(hits).toEqual([]);
  });
});
