/**
 * Opening the files a user names (weights, config.json, tokenizer.json, calibration text) without
 * ever blocking: open(2) of a FIFO waits for a writer and a read of a character device never ends,
 * and a thread blocked there also keeps the process from exiting. So every file is opened with
 * O_NONBLOCK (no effect on regular files), checked with fstat on that same descriptor (no race with
 * a rename) and refused unless it is a regular file of at most `maxBytes`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { FormatError, IoError, MarlinError } from "@marlin/core";
import { parseJsonStrict } from "./json.js";

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** What a non-regular file is, for the error message. */
function kindOf(st: Stats): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isDirectory()) return "a directory";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** The system's text for an fs error code (what follows "EROFS: " in Node's message). */
function describe(e: NodeJS.ErrnoException): string {
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(e.message);
  return m ? m[1] : e.message;
}

/** A system error from an fs call (code "ENOENT", "EROFS", ...), not one of our typed errors. */
function isErrno(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && !(e instanceof MarlinError) && /^E[A-Z0-9]+$/.test(String((e as NodeJS.ErrnoException).code));
}

/**
 * A typed error for a failed fs call on `path`: IoError ("cannot create directory /x: read-only
 * file system (EROFS)"), or `e` itself when it is not a system error (already typed, a bug).
 */
export function ioError(e: unknown, what: string, path: string): unknown {
  if (!isErrno(e)) return e;
  return new IoError(`cannot ${what}: ${describe(e)} (${e.code})`, path, { cause: e, syscallCode: e.code });
}

/** Runs an fs call, rethrowing its system errors as IoError naming `path`. */
export async function withIo<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw ioError(e, what, path);
  }
}

function checkStats(st: Stats, path: string, maxBytes: number): void {
  if (!st.isFile()) throw new FormatError(`is ${kindOf(st)}, not a regular file`, { file: path });
  if (st.size > maxBytes) throw new FormatError(`is ${st.size} bytes, more than the ${maxBytes}-byte limit for this file`, { file: path });
}

function openFailure(e: unknown, path: string): unknown {
  if (!isErrno(e)) return e;
  return new FormatError(`cannot open: ${describe(e)} (${e.code})`, { file: path });
}

/** An open regular file (FormatError otherwise, naming the path), with its size. */
export async function openRegularFile(path: string, maxBytes = Number.MAX_SAFE_INTEGER): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, READ_FLAGS);
  } catch (e) {
    throw openFailure(e, path);
  }
  try {
    const st = await fh.stat();
    checkStats(st, path, maxBytes);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close();
    throw openFailure(e, path);
  }
}

/** A whole regular file of at most `maxBytes`, read synchronously (config files, small texts). */
export function readRegularFileSync(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (e) {
    throw openFailure(e, path);
  }
  try {
    const st = fstatSync(fd);
    checkStats(st, path, maxBytes);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break; // the file shrank while being read: take what is there
      done += n;
    }
    return done === buf.length ? buf : buf.subarray(0, done);
  } catch (e) {
    throw openFailure(e, path);
  } finally {
    closeSync(fd);
  }
}

/** A regular UTF-8 text file of at most `maxBytes` (invalid UTF-8 is a FormatError). */
export function readTextFileSync(path: string, maxBytes: number): string {
  const bytes = readRegularFileSync(path, maxBytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError("is not valid UTF-8 text", { file: path });
  }
}

/** A regular file holding one JSON object of at most `maxBytes` (FormatError otherwise). */
export function readJsonObjectSync(path: string, maxBytes: number): Record<string, unknown> {
  const v = parseJsonStrict(readTextFileSync(path, maxBytes), path);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError("is not a JSON object", { file: path });
  return v as Record<string, unknown>;
}

/** Size limits of the small files around a checkpoint (real ones are far below these). */
export const FILE_LIMITS = {
  /** config.json, generation_config.json, tokenizer_config.json, the shard index. */
  json: 64 << 20,
  /** tokenizer.json (the largest real ones are near 30 MB). */
  tokenizer: 256 << 20,
  /** Calibration text, read whole (a JS string holds at most ~512M characters). */
  text: 256 << 20,
} as const;
