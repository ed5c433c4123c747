/** Where the demo's model comes from: an argument, MARLIN_MODEL, or the shared tiny-llama fixture. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "@marlin/core";

export function findModelDir(arg: string | undefined): string {
  if (arg) {
    const dir = resolve(arg);
    if (!existsSync(join(dir, "config.json")))
      throw new InvalidArgumentError(`${dir} is not a model directory (no config.json)`);
    return dir;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.MARLIN_MODEL,
    process.env.MARLIN_FIXTURE_DIR,
    resolve(here, "../../../../shared/models/tiny-llama"), // the repo's sibling shared/ folder
    resolve(here, "../../../shared/models/tiny-llama"), // shared/ inside the checkout
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(join(p, "config.json")));
  if (!found)
    throw new InvalidArgumentError(
      `no model found (looked in ${candidates.join(", ")}); pass a Hugging Face Llama-family model directory: pnpm demo <dir>`,
    );
  return found;
}
