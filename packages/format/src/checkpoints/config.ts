import { FormatError } from "@marlin/core";
import type { Bits } from "../quantize.js";

export type QuantMethod = "gptq" | "awq" | "marlin";
export type CheckpointFormat = "gptq" | "gptq_v2" | "marlin" | "awq_gemm";

/** The fields of a `quantization_config` (or quantize_config.json / quant_config.json) we use. */
export interface QuantizationConfig {
  quantMethod: QuantMethod;
  bits: Bits;
  /** -1: per-channel. */
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  checkpointFormat: CheckpointFormat;
  /** 1 or 2 for GPTQ checkpoints (zero - 1 or raw zeros); absent otherwise. */
  gptqVersion?: 1 | 2;
  /** AWQ zero_point. */
  zeroPoint?: boolean;
  /** AWQ kernel flavour ("gemm"); only gemm is taken. */
  awqVersion?: string;
  dampPercent?: number;
  lmHead: boolean;
  modulesToNotConvert?: string[];
  /** The object the fields came from. */
  raw: Record<string, unknown>;
}

function obj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Parses a Hugging Face config.json (its "quantization_config"), a quantize_config.json, or the
 * inner object itself. Accepts a JSON string or a parsed object. Throws FormatError on anything
 * it cannot represent.
 */
export function parseQuantizationConfig(json: unknown, file?: string): QuantizationConfig {
  let src: unknown = json;
  if (typeof src === "string") {
    try {
      src = JSON.parse(src);
    } catch (e) {
      throw new FormatError(`not JSON: ${(e as Error).message}`, { file });
    }
  }
  if (!obj(src)) throw new FormatError("quantization config is not an object", { file });
  const raw = obj(src.quantization_config) ? src.quantization_config : src;
  const get = (...keys: string[]) => {
    for (const key of keys) if (raw[key] !== undefined && raw[key] !== null) return raw[key];
    return undefined;
  };

  let method = get("quant_method");
  if (typeof method === "string") method = method.toLowerCase();
  if (method === undefined) {
    if (get("w_bit") !== undefined || get("zero_point") !== undefined) method = "awq";
    else if (get("bits") !== undefined) method = "gptq";
  }
  if (method !== "gptq" && method !== "awq" && method !== "marlin") {
    throw new FormatError(`unsupported quant_method ${JSON.stringify(method)}`, { file });
  }

  const bits = get("bits", "w_bit") ?? (method === "marlin" ? 4 : undefined);
  if (bits !== 4 && bits !== 8) throw new FormatError(`unsupported bits ${JSON.stringify(bits)} (4 or 8)`, { file });
  const groupSize = get("group_size", "q_group_size", "groupsize") ?? -1;
  if (typeof groupSize !== "number" || !Number.isSafeInteger(groupSize) || (groupSize !== -1 && groupSize <= 0)) {
    throw new FormatError(`invalid group_size ${JSON.stringify(groupSize)}`, { file });
  }
  const bool = (v: unknown, name: string, dflt: boolean): boolean => {
    if (v === undefined) return dflt;
    if (typeof v !== "boolean") throw new FormatError(`${name} must be a boolean, got ${JSON.stringify(v)}`, { file });
    return v;
  };
  const descAct = bool(get("desc_act"), "desc_act", false);
  const lmHead = bool(get("lm_head"), "lm_head", false);
  const modules = get("modules_to_not_convert");
  const dampPercent = get("damp_percent");

  const base = {
    quantMethod: method as QuantMethod,
    bits: bits as Bits,
    groupSize,
    descAct,
    lmHead,
    raw,
    ...(typeof dampPercent === "number" ? { dampPercent } : {}),
    ...(Array.isArray(modules) ? { modulesToNotConvert: modules.filter((m) => typeof m === "string") } : {}),
  };

  if (method === "awq") {
    const zeroPoint = bool(get("zero_point"), "zero_point", true);
    const version = get("version") ?? "gemm";
    if (typeof version !== "string" || version.toLowerCase() !== "gemm") {
      throw new FormatError(`unsupported AWQ version ${JSON.stringify(version)} (only gemm)`, { file });
    }
    if (bits !== 4) throw new FormatError(`AWQ gemm is 4-bit, got ${bits}`, { file });
    return { ...base, sym: !zeroPoint, zeroPoint, awqVersion: "gemm", checkpointFormat: "awq_gemm" };
  }
  if (method === "marlin") {
    return { ...base, sym: true, checkpointFormat: "marlin" };
  }
  const sym = bool(get("sym"), "sym", true);
  let format = get("checkpoint_format", "format");
  if (format === undefined && get("is_marlin_format") === true) format = "marlin";
  format = format ?? "gptq";
  if (format !== "gptq" && format !== "gptq_v2" && format !== "marlin") {
    throw new FormatError(`unsupported checkpoint_format ${JSON.stringify(format)}`, { file });
  }
  return {
    ...base,
    sym,
    checkpointFormat: format,
    ...(format === "marlin" ? {} : { gptqVersion: format === "gptq_v2" ? 2 : 1 }),
  } as QuantizationConfig;
}
