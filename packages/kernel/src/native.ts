/**
 * Loads marlin.node (built from native/ by scripts/build-native.mjs into prebuilds/) and turns the
 * errors it throws into the typed errors of @marlin/core.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AlignmentError,
  CudaError,
  DisposedError,
  DTypeError,
  InvalidArgumentError,
  MarlinError,
  NativeLoadError,
  NoDeviceError,
  ShapeError,
} from "@marlin/core";

/** The raw addon. Areas add functions to it; see native/src/<area>. Prefer the typed wrappers. */
export type NativeAddon = Record<string, any> & {
  modules: string[];
  builtWithCuda: boolean;
  cudaStatus(): NativeCudaStatus;
};

export interface NativeCudaStatus {
  builtWithCuda: boolean;
  deviceCount: number;
  error?: string;
  message?: string;
  runtimeVersion?: number;
  driverVersion?: number;
}

export const NATIVE_PATH_ENV = "MARLIN_NATIVE_PATH";

let cached: NativeAddon | undefined;

function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const plat = `${process.platform}-${process.arch}`;
  const env = process.env[NATIVE_PATH_ENV];
  // src/ and dist/ are siblings of prebuilds/.
  return [...(env ? [env] : []), join(here, "..", "prebuilds", plat, "marlin.node")];
}

/** The loaded addon; NativeLoadError when it is missing or does not load. */
export function native(): NativeAddon {
  if (cached) return cached;
  const tried = candidates();
  const found = tried.find((p) => existsSync(p));
  if (!found)
    throw new NativeLoadError(
      `marlin.node not found (looked in ${tried.join(", ")}); build it with \`pnpm --filter @marlin/kernel build\``,
    );
  try {
    cached = createRequire(import.meta.url)(found) as NativeAddon;
  } catch (err) {
    throw new NativeLoadError(`could not load ${found}: ${(err as Error).message}`, { cause: err });
  }
  return cached;
}

/** A typed @marlin/core error for an error thrown by the addon (other errors pass through). */
export function typedError(err: unknown): unknown {
  if (err instanceof MarlinError || !(err instanceof Error)) return err;
  const e = err as Error & { code?: string; cudaError?: string };
  switch (e.code) {
    case "ERR_MARLIN_CUDA":
      return new CudaError(e.cudaError ?? "cudaErrorUnknown", e.message);
    case "ERR_MARLIN_NO_DEVICE":
      return new NoDeviceError(e.message);
    case "ERR_MARLIN_INVALID_ARGUMENT":
      return new InvalidArgumentError(e.message);
    case "ERR_MARLIN_SHAPE":
      return new ShapeError(e.message);
    case "ERR_MARLIN_DTYPE":
      return new DTypeError(e.message);
    case "ERR_MARLIN_ALIGNMENT":
      return new AlignmentError(e.message);
    case "ERR_MARLIN_DISPOSED":
      return new DisposedError(e.message.replace(/ was used after it was freed$/, ""));
    default:
      return err;
  }
}

/** Calls into the addon, rethrowing its errors as typed errors. */
export function call<T>(fn: (addon: NativeAddon) => T): T {
  const addon = native();
  try {
    return fn(addon);
  } catch (err) {
    throw typedError(err);
  }
}
