/**
 * tokenizer.json through the Hugging Face `tokenizers` library: its normalizer, pre-tokenizer,
 * post-processor (BOS) and decoder run exactly as in Python.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { FormatError, InvalidArgumentError } from "@marlin/core";
import { FILE_LIMITS, readJsonObjectSync, readTextFileSync } from "@marlin/format";
import { RequestRejectedError } from "../core/engine.js";
import { checkTokenizerJson } from "./tokenizer-check.js";

interface HfTokenizer {
  encode(text: string, pair?: string | null, opts?: { addSpecialTokens?: boolean }): Promise<{ getIds(): number[] }>;
  encodeBatch(texts: string[], opts?: { addSpecialTokens?: boolean }): Promise<{ getIds(): number[] }[]>;
  decode(ids: number[], skipSpecial: boolean): Promise<string>;
  decodeBatch(ids: number[][], skipSpecial: boolean): Promise<string[]>;
  getVocabSize(withAdded?: boolean): number;
  tokenToId(token: string): number | null;
}

/** Runs a `tokenizers` call; its errors (a broken tokenizer.json met while encoding) become FormatError naming the file. */
async function libraryCall<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new FormatError(`cannot ${what}: ${(e as Error)?.message ?? String(e)}`, { file: path });
  }
}

/** Token ids to decode: integers in [0, 2^32) (the library takes u32). */
function checkIds(ids: unknown): void {
  if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < 0 || t >= 2 ** 32))
    throw new InvalidArgumentError("token ids must be an array of integers in [0, 2^32)");
}

export class Tokenizer {
  readonly path: string;
  /** Prepend BOS ourselves: tokenizer_config.json asks for it and the post-processor does not add it. */
  private readonly forceBos: number | undefined;
  private readonly tk: HfTokenizer;

  private constructor(path: string, tk: HfTokenizer, forceBos: number | undefined) {
    this.path = path;
    this.tk = tk;
    this.forceBos = forceBos;
  }

  /** Loads `dir/tokenizer.json` (and tokenizer_config.json's add_bos_token when present). */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const path = join(dir, "tokenizer.json");
    if (!existsSync(path)) throw new FormatError("tokenizer.json not found", { file: path });
    // Read here, not by the library: a FIFO or device is refused instead of blocking the thread.
    const json = readTextFileSync(path, FILE_LIMITS.tokenizer);
    let cfg: Record<string, unknown> | undefined;
    const cfgPath = join(dir, "tokenizer_config.json");
    if (existsSync(cfgPath)) {
      try {
        cfg = readJsonObjectSync(cfgPath, FILE_LIMITS.json);
      } catch {
        // tokenizer_config.json is advisory; tokenizer.json alone defines the tokenizer.
      }
    }
    return Tokenizer.fromJson(json, path, cfg);
  }

  /** A tokenizer from tokenizer.json text (`path` names it in errors), with tokenizer_config.json's object. */
  static async fromJson(json: string, path = "<memory>", config?: Record<string, unknown>): Promise<Tokenizer> {
    if (typeof json !== "string") throw new InvalidArgumentError("tokenizer JSON must be a string");
    const req = createRequire(import.meta.url);
    const { Tokenizer: Hf } = req("tokenizers") as { Tokenizer: { fromString(json: string): HfTokenizer } };
    checkTokenizerJson(json, path); // what the library would otherwise panic on (a process abort)
    let tk: HfTokenizer;
    try {
      tk = Hf.fromString(json);
    } catch (e) {
      throw new FormatError(`cannot load tokenizer: ${(e as Error).message}`, { file: path });
    }
    let forceBos: number | undefined;
    const cfg = config as Record<string, any> | undefined;
    const bosTok = typeof cfg?.bos_token === "string" ? cfg.bos_token : cfg?.bos_token?.content;
    if (cfg?.add_bos_token === true && typeof bosTok === "string") {
      const id = tk.tokenToId(bosTok);
      if (id !== null) forceBos = id;
    }
    if (forceBos !== undefined) {
      const probe = await libraryCall("encode", path, () => tk.encode("a"));
      if (probe.getIds()[0] !== forceBos) return new Tokenizer(path, tk, forceBos);
    }
    return new Tokenizer(path, tk, undefined);
  }

  get vocabSize(): number {
    return this.tk.getVocabSize(true);
  }

  tokenToId(token: string): number | undefined {
    return this.tk.tokenToId(token) ?? undefined;
  }

  /**
   * Token ids of `text`; with special tokens (BOS from the post-processor) unless told otherwise.
   * With `maxTokens`, a text too long for it is refused (RequestRejectedError) after tokenizing a
   * bounded prefix only, so a 10 MB prompt costs what a few thousand tokens cost.
   */
  async encode(text: string, addSpecialTokens = true, maxTokens?: number): Promise<number[]> {
    if (typeof text !== "string") throw new InvalidArgumentError(`a text prompt must be a string, got ${text === null ? "null" : typeof text}`);
    if (maxTokens !== undefined) await this.refuseIfLonger(text, maxTokens);
    const ids = (await libraryCall("encode", this.path, () => this.tk.encode(text, null, { addSpecialTokens }))).getIds();
    return addSpecialTokens && this.forceBos !== undefined ? [this.forceBos, ...ids] : ids;
  }

  /**
   * Throws when `text` surely has at least `maxTokens` tokens: tokenizes prefixes of growing length
   * (8 characters per allowed token, then 4x longer) and stops as soon as one has enough. Tokens
   * of a prefix are those of the whole text except near the cut, hence the margin; a text that
   * needs its whole length to be counted is short enough to tokenize whole.
   */
  private async refuseIfLonger(text: string, maxTokens: number): Promise<void> {
    const margin = 16;
    for (let cut = Math.max(4096, (maxTokens + margin) * 8); cut < text.length; cut *= 4) {
      // Never split a surrogate pair.
      const end = (text.charCodeAt(cut - 1) & 0xfc00) === 0xd800 ? cut - 1 : cut;
      const n = (await libraryCall("encode", this.path, () => this.tk.encode(text.slice(0, end), null, { addSpecialTokens: false }))).getIds().length;
      if (n >= maxTokens + margin)
        throw new RequestRejectedError(
          `the prompt (${text.length} characters) has at least ${n - margin} tokens in its first ${end} characters alone; the model length is ${maxTokens}`,
        );
    }
  }

  async encodeBatch(texts: string[], addSpecialTokens = true): Promise<number[][]> {
    if (texts.length === 0) return [];
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) throw new InvalidArgumentError("encodeBatch takes an array of strings");
    const encs = await libraryCall("encode", this.path, () => this.tk.encodeBatch(texts, { addSpecialTokens }));
    return encs.map((e) => (addSpecialTokens && this.forceBos !== undefined ? [this.forceBos, ...e.getIds()] : e.getIds()));
  }

  decode(ids: number[], skipSpecialTokens = true): Promise<string> {
    checkIds(ids);
    return libraryCall("decode", this.path, () => this.tk.decode(ids, skipSpecialTokens));
  }

  decodeBatch(ids: number[][], skipSpecialTokens = true): Promise<string[]> {
    if (ids.length === 0) return Promise.resolve([]);
    if (!Array.isArray(ids)) throw new InvalidArgumentError("decodeBatch takes an array of id lists");
    ids.forEach(checkIds);
    return libraryCall("decodeBatch", this.path, () => this.tk.decodeBatch(ids, skipSpecialTokens));
  }
}
