/**
 * Typed errors. Every error thrown by a Marlin package is a MarlinError with a stable `code`,
 * so callers can branch on `err.code` instead of parsing messages.
 */
export class MarlinError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An argument has the wrong value (not shape, dtype or alignment, which have their own classes). */
export class InvalidArgumentError extends MarlinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_MARLIN_INVALID_ARGUMENT", message, options);
  }
}

/** Tensor shapes do not fit the operation. */
export class ShapeError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_SHAPE", message);
  }
}

/** A tensor has a dtype the operation does not take. */
export class DTypeError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_DTYPE", message);
  }
}

/** A buffer or dimension is not aligned as required. */
export class AlignmentError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_ALIGNMENT", message);
  }
}

/** A GPU call was made where no CUDA device exists (or the addon was built without CUDA). */
export class NoDeviceError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_NO_DEVICE", message);
  }
}

/** A CUDA runtime call failed; `cudaError` is the runtime's name for it, e.g. cudaErrorMemoryAllocation. */
export class CudaError extends MarlinError {
  readonly cudaError: string;
  constructor(cudaError: string, message: string) {
    super("ERR_MARLIN_CUDA", message);
    this.cudaError = cudaError;
  }
}

/** The native addon could not be loaded. */
export class NativeLoadError extends MarlinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_MARLIN_NATIVE_LOAD", message, options);
  }
}

/** An object was used after it was freed or disposed. */
export class DisposedError extends MarlinError {
  constructor(what: string) {
    super("ERR_MARLIN_DISPOSED", `${what} was used after it was freed`);
  }
}

/** A file or checkpoint is malformed. `file` and `tensor` say where, when known. */
export class FormatError extends MarlinError {
  readonly file?: string;
  readonly tensor?: string;
  constructor(message: string, where: { file?: string; tensor?: string } = {}) {
    const at = [where.file && `file ${where.file}`, where.tensor && `tensor ${where.tensor}`]
      .filter(Boolean)
      .join(", ");
    super("ERR_MARLIN_FORMAT", at ? `${at}: ${message}` : message);
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

/**
 * A file system call failed on a path the user gave (read-only file system, no space, permission,
 * missing directory). `path` names it; `syscallCode` is the system's code ("EROFS", "ENOSPC", ...).
 */
export class IoError extends MarlinError {
  readonly path: string;
  readonly syscallCode?: string;
  constructor(message: string, path: string, options?: { cause?: unknown; syscallCode?: string }) {
    super("ERR_MARLIN_IO", `${path}: ${message}`, options);
    this.path = path;
    this.syscallCode = options?.syscallCode;
  }
}

/** Two implementations were registered with one id. */
export class DuplicateImplementationError extends MarlinError {
  constructor(id: string) {
    super("ERR_MARLIN_DUPLICATE_IMPLEMENTATION", `an implementation with id "${id}" is already registered`);
  }
}

export interface Refusal {
  id: string;
  reason: string;
}

/** No registered implementation fits a query; `candidates` lists each one with its reason. */
export class NoKernelError extends MarlinError {
  readonly candidates: Refusal[];
  constructor(what: string, candidates: Refusal[]) {
    const lines = candidates.length
      ? candidates.map((c) => `  - ${c.id}: ${c.reason}`).join("\n")
      : "  (no implementation is registered for this op)";
    super("ERR_MARLIN_NO_KERNEL", `no implementation fits ${what}:\n${lines}`);
    this.candidates = candidates;
  }
}
