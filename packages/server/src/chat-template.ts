/**
 * The model's chat template (Jinja, as Hugging Face ships it) rendered with @huggingface/jinja:
 * from `chat_template.jinja` when present (newer checkpoints), else `chat_template` in
 * tokenizer_config.json (a string, or a list of named templates: "default" or the first).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { FormatError } from "@marlin/core";
import { ApiError } from "./errors.js";
import type { ChatMessage } from "./params.js";

type SpecialTokens = Record<"bos_token" | "eos_token" | "unk_token" | "pad_token", string | undefined>;

function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export class ChatTemplate {
  readonly source: string;
  private readonly template: Template;
  private readonly special: SpecialTokens;

  constructor(source: string, special: Partial<SpecialTokens> = {}, origin = "chat template") {
    this.source = source;
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new FormatError(`${origin} does not parse: ${(e as Error).message}`);
    }
    this.special = { bos_token: special.bos_token, eos_token: special.eos_token, unk_token: special.unk_token, pad_token: special.pad_token };
  }

  /**
   * The model directory's template, or undefined when it has none. `override` (template text)
   * replaces the model's and still takes its special tokens.
   */
  static fromModelDir(dir: string | undefined, override?: string): ChatTemplate | undefined {
    let cfg: Record<string, unknown> = {};
    const cfgPath = dir && join(dir, "tokenizer_config.json");
    if (cfgPath && existsSync(cfgPath)) {
      try {
        cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
      } catch (e) {
        throw new FormatError(`cannot read JSON: ${(e as Error).message}`, { file: cfgPath });
      }
    }
    const special = {
      bos_token: tokenText(cfg.bos_token),
      eos_token: tokenText(cfg.eos_token),
      unk_token: tokenText(cfg.unk_token),
      pad_token: tokenText(cfg.pad_token),
    };
    if (override !== undefined) return new ChatTemplate(override, special, "the given chat template");
    const jinjaPath = dir && join(dir, "chat_template.jinja");
    if (jinjaPath && existsSync(jinjaPath)) return new ChatTemplate(readFileSync(jinjaPath, "utf8"), special, jinjaPath);
    let t = cfg.chat_template;
    if (Array.isArray(t)) {
      const named = t as { name?: unknown; template?: unknown }[];
      t = (named.find((x) => x?.name === "default") ?? named[0])?.template;
    }
    if (t === undefined || t === null) return undefined;
    if (typeof t !== "string") throw new FormatError("chat_template must be a string or a list of {name, template}", { file: cfgPath });
    return new ChatTemplate(t, special, `${cfgPath}: chat_template`);
  }

  /** The prompt text for `messages`; a template that raises (e.g. roles out of order) is a 400. */
  render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    try {
      return this.template.render({ messages, add_generation_prompt: addGenerationPrompt, ...this.special });
    } catch (e) {
      throw new ApiError(400, `the chat template refused the messages: ${(e as Error).message}`, { param: "messages", code: "invalid_value" });
    }
  }
}
