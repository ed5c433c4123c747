import { FormatError } from "@marlin/core";
import { duplicateJsonKey } from "../json.js";
import { byteSize, fromSafetensorsDType, type TensorDType } from "./dtypes.js";

/** Where one tensor lies. `byteOffset` is absolute in the file (header included). */
export interface TensorInfo {
  dtype: TensorDType;
  shape: number[];
  byteOffset: number;
  byteLength: number;
}

export interface ParsedHeader {
  /** Tensors in file order (by offset). */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute offset of the data buffer (8 + header length). */
  dataStart: number;
}

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Reads the 8-byte little-endian header length and checks it against the file size, before any
 * allocation of that size.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file?: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new FormatError(`file is ${fileSize} bytes, shorter than the 8-byte header length`, { file });
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi !== 0 || lo > MAX_HEADER_BYTES) {
    throw new FormatError(`header length ${hi * 2 ** 32 + lo} exceeds the ${MAX_HEADER_BYTES}-byte limit`, { file });
  }
  if (lo < 2) throw new FormatError(`header length ${lo} is too small for a JSON object`, { file });
  if (8 + lo > fileSize) {
    throw new FormatError(`header length ${lo} runs past the end of the ${fileSize}-byte file`, { file });
  }
  return lo;
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Validates the JSON header and the tiling of the data buffer. `dataSize` is the byte length
 * of everything after the header. Throws FormatError naming the file and tensor.
 */
export function parseHeaderJson(headerBytes: Uint8Array, dataSize: number, file?: string): ParsedHeader {
  let text: string;
  try {
    text = decoder.decode(headerBytes);
  } catch {
    throw new FormatError("header is not valid UTF-8", { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`header is not valid JSON (${(e as Error).message})`, { file });
  }
  // JSON.parse would keep only the last of two entries with one name (which may change its dtype).
  const dup = duplicateJsonKey(text);
  if (dup !== undefined) throw new FormatError(`header gives the key ${JSON.stringify(dup.slice(0, 200))} twice in one object`, { file });
  if (!isPlainObject(json)) throw new FormatError("header is not a JSON object", { file });

  // Filled with defineProperty-like semantics (Object.fromEntries) so a key "__proto__" stays data.
  const metaEntries: [string, string][] = [];
  const entries: { name: string; info: TensorInfo; begin: number; end: number }[] = [];
  const dataStart = 8 + headerBytes.length;
  for (const name of Object.keys(json)) {
    const v = json[name];
    if (name === "__metadata__") {
      if (v === null) continue;
      if (!isPlainObject(v)) throw new FormatError("__metadata__ is not an object", { file });
      for (const [mk, mv] of Object.entries(v)) {
        if (typeof mv !== "string") {
          throw new FormatError(`__metadata__ value of "${mk}" is not a string`, { file });
        }
        metaEntries.push([mk, mv]);
      }
      continue;
    }
    const where = { file, tensor: name };
    if (!isPlainObject(v)) throw new FormatError("entry is not an object", where);
    const { dtype: st, shape, data_offsets: offsets } = v;
    if (typeof st !== "string") throw new FormatError("dtype is missing or not a string", where);
    const dtype = fromSafetensorsDType(st);
    if (dtype === undefined) throw new FormatError(`unknown dtype "${st.slice(0, 32)}"`, where);
    if (!Array.isArray(shape)) throw new FormatError("shape is missing or not an array", where);
    if (shape.length > 64) throw new FormatError(`shape has ${shape.length} dimensions`, where);
    let numel = 1;
    for (const d of shape) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
        throw new FormatError(`shape ${JSON.stringify(shape).slice(0, 80)} has an invalid dimension`, where);
      }
      numel *= d;
      if (!Number.isSafeInteger(numel)) throw new FormatError("shape has too many elements", where);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      throw new FormatError("data_offsets is missing or not a pair", where);
    }
    const [begin, end] = offsets;
    if (
      typeof begin !== "number" ||
      typeof end !== "number" ||
      !Number.isSafeInteger(begin) ||
      !Number.isSafeInteger(end) ||
      begin < 0 ||
      end < begin
    ) {
      throw new FormatError(`data_offsets ${JSON.stringify(offsets).slice(0, 80)} are invalid`, where);
    }
    const bytes = byteSize(dtype, numel);
    if (bytes < 0) throw new FormatError(`shape [${shape}] is not a whole number of bytes of ${st}`, where);
    if (bytes !== end - begin) {
      throw new FormatError(`shape [${shape}] of ${st} needs ${bytes} bytes but data_offsets span ${end - begin}`, where);
    }
    if (end > dataSize) {
      throw new FormatError(`data_offsets end ${end} is past the ${dataSize}-byte data buffer`, where);
    }
    entries.push({
      name,
      begin,
      end,
      info: { dtype, shape: shape.slice() as number[], byteOffset: dataStart + begin, byteLength: end - begin },
    });
  }

  // Offsets must tile [0, dataSize): sorted by begin, each starts where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of entries) {
    if (e.begin !== pos) {
      const what = e.begin > pos ? `a gap at bytes [${pos}, ${e.begin})` : `an overlap at byte ${e.begin}`;
      throw new FormatError(`data_offsets leave ${what} of the data buffer`, { file, tensor: e.name });
    }
    pos = e.end;
  }
  if (pos !== dataSize) {
    throw new FormatError(`tensors cover ${pos} bytes but the data buffer holds ${dataSize} (file length mismatch)`, {
      file,
    });
  }
  const tensors = new Map<string, TensorInfo>();
  for (const e of entries) tensors.set(e.name, e.info);
  return { tensors, metadata: Object.fromEntries(metaEntries), dataStart };
}
