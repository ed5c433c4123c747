import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The fixture model (field notes §8): ../shared/models/tiny-llama from the repo root, or MARLIN_TINY_LLAMA. */
export function tinyLlamaDir(): string {
  // MARLIN_FIXTURE_DIR: tools/gpu/prepare.sh --with-model carries the fixture there.
  const env = process.env.MARLIN_TINY_LLAMA ?? process.env.MARLIN_FIXTURE_DIR;
  if (env) return env;
  const candidates = [resolve(here, "../../../../shared/models/tiny-llama"), resolve(here, "../../../shared/models/tiny-llama")];
  return candidates.find((p) => existsSync(join(p, "config.json"))) ?? candidates[0];
}

export const hasTinyLlama = (): boolean => existsSync(join(tinyLlamaDir(), "model.safetensors"));
