import type { FileHandle } from "node:fs/promises";
import { DisposedError, FormatError, InvalidArgumentError } from "@marlin/core";
import { openRegularFile, withIo } from "../files.js";
import { type TensorDType, type TypedArray, viewAs } from "./dtypes.js";
import { parseHeaderJson, parseHeaderLength, type TensorInfo } from "./header.js";

/** A tensor in host memory. fp16/bf16 data are raw bits in a Uint16Array. */
export interface Tensor {
  dtype: TensorDType;
  shape: number[];
  data: TypedArray;
}

/** What every tensor store offers: one file, or a sharded checkpoint. */
export interface TensorSource {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  read(name: string): Promise<Tensor>;
  close(): Promise<void>;
}

/** Random-access bytes: a file handle or an in-memory buffer. */
interface ByteSource {
  size: number;
  readAt(dst: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

function fileSource(fh: FileHandle, size: number, path: string): ByteSource {
  return {
    size,
    async readAt(dst, position) {
      let done = 0;
      while (done < dst.length) {
        // fs reads are capped near 2 GiB per call; loop for big tensors.
        const len = Math.min(dst.length - done, 1 << 30);
        const { bytesRead } = await withIo("read", path, () => fh.read(dst, done, len, position + done));
        if (bytesRead === 0) throw new FormatError(`file ended early at byte ${position + done}`, { file: path });
        done += bytesRead;
      }
    },
    close: () => fh.close(),
  };
}

function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    async readAt(dst, position) {
      dst.set(bytes.subarray(position, position + dst.length));
    },
    async close() {},
  };
}

/** One .safetensors file, opened lazily: only the header is read up front. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute offset where the data buffer begins. */
  readonly dataStart: number;
  private src: ByteSource | undefined;

  private constructor(
    path: string,
    src: ByteSource,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.path = path;
    this.src = src;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  private static async fromSource(src: ByteSource, path: string): Promise<SafetensorsFile> {
    const prefix = new Uint8Array(8);
    if (src.size >= 8) await src.readAt(prefix, 0);
    const n = parseHeaderLength(prefix, src.size, path);
    const header = new Uint8Array(n);
    await src.readAt(header, 8);
    const parsed = parseHeaderJson(header, src.size - 8 - n, path);
    return new SafetensorsFile(path, src, parsed.tensors, parsed.metadata, parsed.dataStart);
  }

  /** Opens a file and validates its header; tensors are read later, one at a time. */
  static async open(path: string): Promise<SafetensorsFile> {
    // Refuses FIFOs and devices before any read (a FIFO would block open() and the exit path).
    const { fh, size } = await openRegularFile(path);
    try {
      return await SafetensorsFile.fromSource(fileSource(fh, size, path), path);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Parses a whole file already in memory (tests, small files). */
  static async fromBytes(bytes: Uint8Array, name = "<memory>"): Promise<SafetensorsFile> {
    return SafetensorsFile.fromSource(bufferSource(bytes), name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new FormatError("no such tensor", { file: this.path, tensor: name });
    return info;
  }

  /** Reads one tensor's raw bytes into a fresh buffer (8-byte aligned). */
  async readBytes(name: string): Promise<Uint8Array> {
    if (!this.src) throw new DisposedError(`SafetensorsFile ${this.path}`);
    const info = this.info(name);
    const bytes = new Uint8Array(info.byteLength);
    await this.src.readAt(bytes, info.byteOffset);
    return bytes;
  }

  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    const bytes = await this.readBytes(name);
    return { dtype: info.dtype, shape: info.shape.slice(), data: viewAs(info.dtype, bytes.buffer, 0, bytes.length) };
  }

  /** Reads every tensor, in file order. Convenient for small files only. */
  async readAll(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const name of this.tensors.keys()) out.set(name, await this.read(name));
    return out;
  }

  async close(): Promise<void> {
    const src = this.src;
    this.src = undefined;
    if (src) await src.close();
  }
}

/** Checks a tensor's dtype, throwing a FormatError that names it. */
export function expectDType(t: Tensor, dtypes: TensorDType[], name: string, file?: string): void {
  if (!dtypes.includes(t.dtype)) {
    throw new FormatError(`dtype ${t.dtype}, expected ${dtypes.join(" or ")}`, { file, tensor: name });
  }
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new InvalidArgumentError(`invalid dimension ${d} in [${shape}]`);
    n *= d;
  }
  return n;
}
