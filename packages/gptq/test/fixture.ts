import { existsSync, readdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The tiny-llama fixture: MARLIN_FIXTURE_DIR, else ../../../shared/models/tiny-llama from the package. */
export const FIXTURE = process.env.MARLIN_FIXTURE_DIR ?? resolve(pkg, "../../../shared/models/tiny-llama");
export const hasFixture = existsSync(resolve(FIXTURE, "config.json")) && existsSync(resolve(FIXTURE, "calib.txt"));
if (!hasFixture) console.log(`skipping whole-model tests: no tiny-llama fixture at ${FIXTURE} (set MARLIN_FIXTURE_DIR)`);

/** Names in `dir` that a run writing `out` may leave: `out` itself and its hidden `.partial-*` siblings. */
export function leftovers(dir: string, outName: string): string[] {
  return readdirSync(dir).filter((f) => f === outName || f.startsWith(`.${outName}.partial-`));
}
