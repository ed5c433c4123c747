/**
 * tokenizer.json: small BPE / WordPiece / WordLevel tokenizers with varied normalizers,
 * pre-tokenizers, post-processors and decoders, then JSON edits; an accepted one encodes odd text
 * (with the engine's length bound) and decodes its ids back. Ids must lie in the vocabulary.
 */
import type { Rng } from "@marlin/core";
import { Tokenizer } from "@marlin/engine";
import { chance, mutateBytes, mutateJson, oddText, pick } from "../mutate.js";
import type { Target } from "./types.js";

const SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"];

function byteLevelVocab(rng: Rng): { vocab: Record<string, number>; merges: string[][] } {
  // The 256 byte-level symbols GPT-2 style pre-tokenizers produce, then a few merges.
  const vocab: Record<string, number> = {};
  for (const s of SPECIAL) vocab[s] = Object.keys(vocab).length;
  const bytes: string[] = [];
  let hidden = 0;
  for (let b = 0; b < 256; b++) {
    const visible = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    bytes.push(String.fromCharCode(visible ? b : 256 + hidden++));
  }
  for (const s of bytes) vocab[s] = Object.keys(vocab).length;
  const merges: string[][] = [];
  for (let m = 0; m < rng.int(0, 40); m++) {
    const a = pick(rng, Object.keys(vocab).slice(4));
    const b = pick(rng, bytes);
    if (vocab[a + b] !== undefined) continue;
    merges.push([a, b]);
    vocab[a + b] = Object.keys(vocab).length;
  }
  return { vocab, merges };
}

function model(rng: Rng): Record<string, unknown> {
  const { vocab, merges } = byteLevelVocab(rng);
  switch (rng.int(0, 4)) {
    case 0:
      return { type: "WordPiece", unk_token: "<unk>", continuing_subword_prefix: "##", max_input_chars_per_word: pick(rng, [100, 1, 0]), vocab };
    case 1:
      return { type: "WordLevel", vocab, unk_token: "<unk>" };
    default:
      return { type: "BPE", dropout: null, unk_token: chance(rng, 0.5) ? "<unk>" : null, continuing_subword_prefix: chance(rng, 0.1) ? pick(rng, ["##", "", "é", "aaaa"]) : null, end_of_word_suffix: chance(rng, 0.1) ? pick(rng, ["</w>", "", "é"]) : null, fuse_unk: chance(rng, 0.5), byte_fallback: chance(rng, 0.3), ignore_merges: false, vocab, merges };
  }
}

const NORMALIZERS = [
  null,
  { type: "NFC" },
  { type: "NFKD" },
  { type: "Lowercase" },
  { type: "Strip", strip_left: true, strip_right: true },
  { type: "Replace", pattern: { String: " " }, content: "▁" },
  { type: "Prepend", prepend: "▁" },
  { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Lowercase" }] },
];
const PRE = [
  null,
  { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  { type: "Whitespace" },
  { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true },
  { type: "Split", pattern: { Regex: "\\s+" }, behavior: "Isolated", invert: false },
  { type: "Digits", individual_digits: true },
];
const POST = [
  null,
  { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
];
const DECODERS = [null, { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }, { type: "WordPiece", prefix: "##", cleanup: true }, { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true }];

function tokenizerJson(rng: Rng): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: pick(rng, NORMALIZERS),
    pre_tokenizer: pick(rng, PRE),
    post_processor: pick(rng, POST),
    decoder: pick(rng, DECODERS),
    model: model(rng),
  };
}

export const tokenizerTarget: Target = {
  name: "tokenizer",
  async run(rng) {
    const obj = tokenizerJson(rng);
    const mode = rng.int(0, 6);
    let text = JSON.stringify(mode < 3 ? mutateJson(rng, obj) : obj);
    if (mode === 3) text = new TextDecoder().decode(mutateBytes(rng, new TextEncoder().encode(text)));
    const tk = await Tokenizer.fromJson(text, "tokenizer.json", chance(rng, 0.2) ? { add_bos_token: true, bos_token: "<s>" } : undefined);
    const maxTokens = pick(rng, [1, 8, 64, 1024]);
    const ids = await tk.encode(oddText(rng), chance(rng, 0.5), maxTokens);
    // Ids beyond the model's vocabulary are refused by the engine per request; here they must be ids.
    if (ids.some((t) => !Number.isSafeInteger(t) || t < 0)) throw new Error(`encode gave a non-id ${ids.find((t) => !Number.isSafeInteger(t) || t < 0)}`);
    await tk.decode(ids, chance(rng, 0.5));
  },
};
