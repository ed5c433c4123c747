/**
 * Checks of tokenizer.json that the `tokenizers` library does not make but relies on (found by
 * the fuzz suite): a violation is a Rust panic in a thread that cannot unwind, which aborts the
 * whole process. So they are made here first, each refusal a FormatError naming the file.
 */
import { FormatError } from "@marlin/core";
import { parseJsonStrict } from "@marlin/format";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** A TemplateProcessing post-processor: every special token a template names must be defined, ids and tokens paired. */
function checkTemplate(p: Json, fail: (msg: string) => never): void {
  const specials = p.special_tokens ?? {};
  if (!isObject(specials)) fail("post_processor.special_tokens must be an object");
  for (const [name, t] of Object.entries(specials)) {
    if (!isObject(t)) fail(`special token ${JSON.stringify(name.slice(0, 80))} must be an object`);
    const { ids, tokens } = t;
    if (!Array.isArray(ids) || !ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 32))
      fail(`special token ${JSON.stringify(name.slice(0, 80))} needs ids, a list of non-negative integers`);
    if (!Array.isArray(tokens) || tokens.length !== ids.length || !tokens.every((x) => typeof x === "string"))
      fail(`special token ${JSON.stringify(name.slice(0, 80))} needs as many tokens (strings) as ids`);
  }
  for (const which of ["single", "pair"]) {
    const pieces = p[which];
    if (pieces === undefined) continue;
    if (!Array.isArray(pieces)) fail(`post_processor.${which} must be a list`);
    for (const piece of pieces) {
      const special = isObject(piece) && isObject(piece.SpecialToken) ? piece.SpecialToken : undefined;
      if (special && (typeof special.id !== "string" || !Object.hasOwn(specials, special.id)))
        fail(`post_processor.${which} names the special token ${JSON.stringify(special.id)?.slice(0, 80)}, which special_tokens does not define`);
    }
  }
}

function checkProcessor(p: unknown, fail: (msg: string) => never, depth = 0): void {
  if (!isObject(p)) return; // null or absent: none (the library refuses other shapes itself)
  if (depth > 16) fail("post_processor nests too deeply");
  if (p.type === "TemplateProcessing") checkTemplate(p, fail);
  if (p.type === "Sequence" && Array.isArray(p.processors)) for (const q of p.processors) checkProcessor(q, fail, depth + 1);
}

/**
 * A BPE model with a continuing_subword_prefix of L bytes: the library forms each merge's token as
 * a + b[L..] (bytes), so every merge's b must be at least L bytes long and cut there on a
 * character boundary.
 */
function checkBpe(m: Json, fail: (msg: string) => never): void {
  const prefix = m.continuing_subword_prefix;
  if (typeof prefix !== "string" || prefix === "" || !Array.isArray(m.merges)) return;
  const cut = Buffer.byteLength(prefix);
  m.merges.forEach((merge, i) => {
    const b = Array.isArray(merge) ? merge[1] : typeof merge === "string" ? merge.split(" ")[1] : undefined;
    if (typeof b !== "string") return; // malformed: the library refuses it
    const bytes = Buffer.from(b);
    if (bytes.length < cut || (bytes.length > cut && (bytes[cut] & 0xc0) === 0x80))
      fail(`merge ${i}: its second part ${JSON.stringify(b.slice(0, 40))} does not carry the ${cut}-byte continuing_subword_prefix`);
  });
}

/** Parses tokenizer.json text (duplicate keys refused) and checks what encoding relies on. */
export function checkTokenizerJson(json: string, path: string): void {
  const fail = (msg: string): never => {
    throw new FormatError(msg, { file: path });
  };
  const v = parseJsonStrict(json, path);
  if (!isObject(v)) fail("tokenizer.json is not a JSON object");
  checkProcessor((v as Json).post_processor, fail);
  const model = (v as Json).model;
  if (isObject(model) && model.type === "BPE") checkBpe(model, fail);
}
