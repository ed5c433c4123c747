/**
 * Loads marlin.node and turns the errors it throws into the typed errors of @marlin/core. Which
 * file is chosen (and why others were not) is addon-select.ts; nothing is loaded at import, and a
 * machine where no addon fits gets NativeLoadError from the first native call, never a crash.
 */
import { createRequire } from "node:module";
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
import { type AddonMeta, type AddonOrigin, NATIVE_PATH_ENV, type Rejection, selectAddon } from "./addon-select.js";

export { NATIVE_PATH_ENV };

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

/** Which addon this process uses, how it was chosen, and why others were passed over. */
export interface NativeInfo {
  /** The loaded file; undefined when none could be loaded (`error` says why). */
  path?: string;
  /** MARLIN_NATIVE_PATH, a local build (dev, or built from source at install), or a shipped prebuild. */
  origin?: AddonOrigin;
  /** What the build recorded beside the file (backend, CUDA architectures, toolkit, glibc). */
  meta?: AddonMeta;
  rejected: Rejection[];
  error?: string;
}

const BUILD_HINT =
  "build it from the shipped sources with `npm rebuild @marlin/kernel` (needs cmake and a C++ compiler; nvcc for CUDA; MARLIN_BUILD_FROM_SOURCE=1 forces it), or in the repo `pnpm --filter @marlin/kernel build`";

let cached: NativeAddon | undefined;
let info: NativeInfo | undefined;

function load(): NativeInfo {
  const choice = selectAddon();
  const base = { origin: choice.origin, meta: choice.meta, rejected: choice.rejected };
  if (!choice.path) {
    const why = choice.rejected.map((r) => `${r.path}: ${r.reason}`).join("; ");
    return { ...base, error: `no usable marlin.node (${why || "none found"}); ${BUILD_HINT}` };
  }
  try {
    cached = createRequire(import.meta.url)(choice.path) as NativeAddon;
    return { ...base, path: choice.path };
  } catch (err) {
    return { ...base, error: `could not load ${choice.path}: ${(err as Error).message}; ${BUILD_HINT}` };
  }
}

/** The addon in use and how it was chosen; loads it on first call. Never throws. */
export function nativeInfo(): NativeInfo {
  info ??= load();
  return info;
}

/** The loaded addon; NativeLoadError (with every candidate's reason) when none can be used. */
export function native(): NativeAddon {
  if (cached) return cached;
  const i = nativeInfo();
  if (!cached) throw new NativeLoadError(i.error ?? "marlin.node is not loaded");
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
