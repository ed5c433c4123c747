/**
 * tokenizer.json through the Hugging Face `tokenizers` library: its normalizer, pre-tokenizer,
 * post-processor (BOS) and decoder run exactly as in Python.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { FormatError } from "@marlin/core";

interface HfTokenizer {
  encode(text: string, pair?: string | null, opts?: { addSpecialTokens?: boolean }): Promise<{ getIds(): number[] }>;
  encodeBatch(texts: string[], opts?: { addSpecialTokens?: boolean }): Promise<{ getIds(): number[] }[]>;
  decode(ids: number[], skipSpecial: boolean): Promise<string>;
  decodeBatch(ids: number[][], skipSpecial: boolean): Promise<string[]>;
  getVocabSize(withAdded?: boolean): number;
  tokenToId(token: string): number | null;
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
    const req = createRequire(import.meta.url);
    const { Tokenizer: Hf } = req("tokenizers") as { Tokenizer: { fromFile(p: string): HfTokenizer } };
    let tk: HfTokenizer;
    try {
      tk = Hf.fromFile(path);
    } catch (e) {
      throw new FormatError(`cannot load tokenizer: ${(e as Error).message}`, { file: path });
    }
    let forceBos: number | undefined;
    const cfgPath = join(dir, "tokenizer_config.json");
    if (existsSync(cfgPath)) {
      try {
        const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
        const bosTok = typeof cfg.bos_token === "string" ? cfg.bos_token : cfg.bos_token?.content;
        if (cfg.add_bos_token === true && typeof bosTok === "string") {
          const id = tk.tokenToId(bosTok);
          if (id !== null) forceBos = id;
        }
      } catch {
        // tokenizer_config.json is advisory; tokenizer.json alone defines the tokenizer.
      }
    }
    const t = new Tokenizer(path, tk, undefined);
    if (forceBos !== undefined) {
      const probe = await tk.encode("a");
      if (probe.getIds()[0] !== forceBos) return new Tokenizer(path, tk, forceBos);
    }
    return t;
  }

  get vocabSize(): number {
    return this.tk.getVocabSize(true);
  }

  tokenToId(token: string): number | undefined {
    return this.tk.tokenToId(token) ?? undefined;
  }

  /** Token ids of `text`; with special tokens (BOS from the post-processor) unless told otherwise. */
  async encode(text: string, addSpecialTokens = true): Promise<number[]> {
    const ids = (await this.tk.encode(text, null, { addSpecialTokens })).getIds();
    return addSpecialTokens && this.forceBos !== undefined ? [this.forceBos, ...ids] : ids;
  }

  async encodeBatch(texts: string[], addSpecialTokens = true): Promise<number[][]> {
    if (texts.length === 0) return [];
    const encs = await this.tk.encodeBatch(texts, { addSpecialTokens });
    return encs.map((e) => (addSpecialTokens && this.forceBos !== undefined ? [this.forceBos, ...e.getIds()] : e.getIds()));
  }

  decode(ids: number[], skipSpecialTokens = true): Promise<string> {
    return this.tk.decode(ids, skipSpecialTokens);
  }

  decodeBatch(ids: number[][], skipSpecialTokens = true): Promise<string[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.tk.decodeBatch(ids, skipSpecialTokens);
  }
}
