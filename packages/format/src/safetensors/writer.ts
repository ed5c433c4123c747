import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { DisposedError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { ioError, withIo } from "../files.js";
import { byteSize, isTensorDType, type TensorDType, toSafetensorsDType } from "./dtypes.js";
import { MAX_HEADER_BYTES } from "./header.js";

export interface TensorSpec {
  name: string;
  dtype: TensorDType;
  shape: number[];
}

/** Tensor data: any typed array (or raw bytes) whose byte length matches the spec. */
export type TensorData = ArrayBufferView;

interface Planned extends TensorSpec {
  begin: number;
  end: number;
}

function checkMetadata(metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  if (typeof metadata !== "object" || metadata === null) throw new InvalidArgumentError("metadata must be an object");
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new InvalidArgumentError(`metadata value of "${k}" must be a string`);
  }
}

/** Lays out the header: tensors in the given order, header padded with spaces to 8 bytes. */
export function planHeader(
  specs: readonly TensorSpec[],
  metadata?: Record<string, string>,
): { header: Uint8Array; planned: Planned[]; dataSize: number } {
  checkMetadata(metadata);
  const seen = new Set<string>();
  const planned: Planned[] = [];
  // Entries as pairs, turned into an object by Object.fromEntries so "__proto__" stays a key.
  const json: [string, unknown][] = [];
  if (metadata && Object.keys(metadata).length > 0) json.push(["__metadata__", Object.fromEntries(Object.entries(metadata))]);
  let pos = 0;
  for (const s of specs) {
    if (typeof s.name !== "string" || s.name === "" || s.name === "__metadata__") {
      throw new InvalidArgumentError(`invalid tensor name ${JSON.stringify(s.name)}`);
    }
    if (seen.has(s.name)) throw new InvalidArgumentError(`tensor "${s.name}" is listed twice`);
    seen.add(s.name);
    if (!isTensorDType(s.dtype)) throw new InvalidArgumentError(`tensor "${s.name}": unknown dtype ${s.dtype}`);
    let numel = 1;
    for (const d of s.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new ShapeError(`tensor "${s.name}": invalid shape [${s.shape}]`);
      numel *= d;
    }
    const bytes = byteSize(s.dtype, numel);
    if (bytes < 0) throw new ShapeError(`tensor "${s.name}": [${s.shape}] is not a whole number of bytes`);
    planned.push({ ...s, shape: s.shape.slice(), begin: pos, end: pos + bytes });
    json.push([s.name, { dtype: toSafetensorsDType(s.dtype), shape: s.shape, data_offsets: [pos, pos + bytes] }]);
    pos += bytes;
  }
  const text = JSON.stringify(Object.fromEntries(json));
  const raw = new TextEncoder().encode(text);
  const padded = Math.ceil((8 + raw.length) / 8) * 8 - 8;
  if (padded > MAX_HEADER_BYTES) throw new InvalidArgumentError(`header of ${padded} bytes is too large`);
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(raw, 8);
  header.fill(0x20, 8 + raw.length);
  return { header, planned, dataSize: pos };
}

function asBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Streaming writer: the header goes first, then each tensor in the declared order, so a model
 * never has to be in memory at once. Writes to a temporary file beside `path` and renames it
 * into place on `close()`; on any error (or `abort()`) the temporary file is removed.
 */
export class SafetensorsWriter {
  readonly path: string;
  private readonly tmp: string;
  private fh: FileHandle | undefined;
  private readonly planned: Planned[];
  private next = 0;
  /** Bytes written of the current tensor (for `writePart`). */
  private partial = 0;
  private pos: number;

  private constructor(path: string, tmp: string, fh: FileHandle, planned: Planned[], pos: number) {
    this.path = path;
    this.tmp = tmp;
    this.fh = fh;
    this.planned = planned;
    this.pos = pos;
  }

  static async create(
    path: string,
    specs: readonly TensorSpec[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsWriter> {
    const { header, planned } = planHeader(specs, metadata);
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    const fh = await withIo("create the file", tmp, () => open(tmp, "wx"));
    const w = new SafetensorsWriter(path, tmp, fh, planned, 0);
    await w.guard(() => w.put(header));
    return w;
  }

  private async put(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const len = Math.min(bytes.length - done, 1 << 30);
      const { bytesWritten } = await this.fh!.write(bytes, done, len, this.pos);
      done += bytesWritten;
      this.pos += bytesWritten;
    }
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      await this.abort();
      throw ioError(e, "write", this.path); // EROFS / ENOSPC / EIO as IoError naming the file
    }
  }

  private current(name: string): Planned {
    if (!this.fh) throw new DisposedError(`SafetensorsWriter ${this.path}`);
    const p = this.planned[this.next];
    if (!p) throw new InvalidArgumentError(`tensor "${name}" written after all declared tensors`);
    if (p.name !== name) {
      throw new InvalidArgumentError(`tensor "${name}" written out of order: "${p.name}" comes next`);
    }
    return p;
  }

  /** Writes the next tensor whole. */
  async write(name: string, data: TensorData): Promise<void> {
    const p = this.current(name);
    const want = p.end - p.begin;
    if (this.partial !== 0) throw new InvalidArgumentError(`tensor "${name}" was already started with writePart`);
    if (data.byteLength !== want) {
      await this.abort();
      throw new ShapeError(`tensor "${name}": ${data.byteLength} bytes given, [${p.shape}] ${p.dtype} needs ${want}`);
    }
    await this.guard(() => this.put(asBytes(data)));
    this.next++;
  }

  /** Writes the next tensor in pieces (rows of a layer being packed, say); it ends when full. */
  async writePart(name: string, data: TensorData): Promise<void> {
    const p = this.current(name);
    const want = p.end - p.begin;
    if (this.partial + data.byteLength > want) {
      await this.abort();
      throw new ShapeError(`tensor "${name}": parts exceed its ${want} bytes`);
    }
    await this.guard(() => this.put(asBytes(data)));
    this.partial += data.byteLength;
    if (this.partial === want) {
      this.partial = 0;
      this.next++;
    }
  }

  /** Finishes the file: every declared tensor must have been written. */
  async close(): Promise<void> {
    if (!this.fh) throw new DisposedError(`SafetensorsWriter ${this.path}`);
    if (this.next !== this.planned.length) {
      const missing = this.planned[this.next].name;
      await this.abort();
      throw new InvalidArgumentError(`closed before tensor "${missing}" was written; nothing was saved`);
    }
    await this.guard(async () => {
      await this.fh!.sync();
      await this.fh!.close();
      this.fh = undefined;
      await rename(this.tmp, this.path);
    });
  }

  /** Drops the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close().catch(() => {});
    await rm(this.tmp, { force: true }).catch(() => {});
  }
}

export interface NamedTensor {
  dtype: TensorDType;
  shape: number[];
  data: TensorData;
}

/** Writes a whole file at once (atomically, through SafetensorsWriter). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, NamedTensor> | Map<string, NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  // Validate every tensor before creating any file.
  const specs = entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const { planned } = planHeader(specs, metadata);
  entries.forEach(([name, t], i) => {
    const want = planned[i].end - planned[i].begin;
    if (!ArrayBuffer.isView(t.data) || t.data.byteLength !== want) {
      throw new ShapeError(`tensor "${name}": ${t.data?.byteLength} bytes given, [${t.shape}] ${t.dtype} needs ${want}`);
    }
  });
  const w = await SafetensorsWriter.create(path, specs, metadata);
  for (const [name, t] of entries) await w.write(name, t.data);
  await w.close();
}

/** Serializes to bytes in memory (tests, small files). */
export function serializeSafetensors(
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = Object.entries(tensors);
  const { header, planned, dataSize } = planHeader(
    entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  );
  const out = new Uint8Array(header.length + dataSize);
  out.set(header, 0);
  entries.forEach(([name, t], i) => {
    const want = planned[i].end - planned[i].begin;
    if (t.data.byteLength !== want) throw new ShapeError(`tensor "${name}": ${t.data.byteLength} bytes, needs ${want}`);
    out.set(asBytes(t.data), header.length + planned[i].begin);
  });
  return out;
}
