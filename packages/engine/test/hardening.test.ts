/**
 * Issue 14, one test per defect on the engine side: native op arguments, special files, sizes
 * taken from a config or options, silent accepts. Each gives its typed error (the repro)
 * before any large allocation or weight read.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpuOps, LLM, parseModelConfig, RequestRejectedError, Tokenizer } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "engine-hardening-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const fixture = tinyLlamaDir();
const hasMkfifo = spawnSync("mkfifo", [join(work, "probe")]).status === 0;

/** A model directory: the fixture's files, config.json edited, any file replaced by a FIFO. */
function modelDir(name: string, edit: (c: Record<string, unknown>) => void = () => {}, fifo?: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  const cfg = JSON.parse(readFileSync(join(fixture, "config.json"), "utf8"));
  edit(cfg);
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) if (f !== fifo) copyFileSync(join(fixture, f), join(dir, f));
  if (fifo !== "model.safetensors") symlinkSync(join(fixture, "model.safetensors"), join(dir, "model.safetensors"));
  if (fifo) {
    if (fifo === "config.json") rmSync(join(dir, fifo));
    execFileSync("mkfifo", [join(dir, fifo)]);
  }
  return dir;
}

describe("native CPU ops: sizes that wrapped int64 (segfaults before)", () => {
  const ops = cpuOps();
  it("siluMul / packLinear / linear with dimensions of 2^32 on empty arrays", () => {
    const e = new Float32Array(0);
    expect(() => ops.siluMul(e, 2 ** 32, 2 ** 32, e)).toThrow(InvalidArgumentError);
    expect(() => ops.siluMul(e, 2 ** 32, 2 ** 32, e)).toThrow(/rows \(#1\) = 4294967296 is outside \[0, 1073741824\]/);
    expect(() => ops.packLinear(e, 2 ** 32, 2 ** 32, e)).toThrow(InvalidArgumentError);
    expect(() => ops.linear(e, e, null, e, 2 ** 32, 2 ** 32, 2 ** 32)).toThrow(InvalidArgumentError);
  });
  it("within the 2^30 cap, a product beyond 2^48 elements is a ShapeError, never a wrapped length", () => {
    const e = new Float32Array(0);
    expect(() => ops.siluMul(e, 2 ** 30, 2 ** 30, e)).toThrow(ShapeError);
    expect(() => ops.siluMul(e, 2 ** 30, 2 ** 30, e)).toThrow(/gu \(rows \* 2 \* inter\) = 1073741824 x 2 x 1073741824 exceeds/);
    expect(() => ops.linear(e, e, null, e, 2 ** 20, 2 ** 30, 2 ** 30)).toThrow(ShapeError);
    expect(() => ops.rmsnorm(new Float32Array(4), new Float32Array(4), -1, 1, 4, new Float32Array(4))).toThrow(/eps .* must be finite and in \[0, 1\]/);
  });
});

describe("config.json sanity", () => {
  const base = JSON.parse(readFileSync(join(fixture, "config.json"), "utf8"));
  it("rms_norm_eps <= 0 or non-finite (NaN output before) is refused", () => {
    for (const eps of [-1, 0, "1e-5"]) expect(() => parseModelConfig({ ...base, rms_norm_eps: eps })).toThrow(/rms_norm_eps must be a finite number in \(0, 1\)/);
  });
  it("rope parameters giving infinite angles, non-boolean flags, non-integer ids are refused", () => {
    expect(() => parseModelConfig({ ...base, rope_parameters: { rope_theta: 1e-45, rope_type: "default" } })).toThrow(FormatError);
    expect(() => parseModelConfig({ ...base, tie_word_embeddings: "true" })).toThrow(/tie_word_embeddings must be true or false/);
    expect(() => parseModelConfig({ ...base, eos_token_id: [2, "x"] })).toThrow(/eos_token_id/);
    expect(() => parseModelConfig({ ...base, hidden_size: 2 ** 40 })).toThrow(/exceeds the largest supported value/);
  });
});

describe.skipIf(!hasTinyLlama())("LLM.load on tiny-llama with hostile files and options", () => {
  let llm: LLM;
  beforeAll(async () => {
    llm = await LLM.load(fixture, { device: "cpu" });
  });
  it.skipIf(!hasMkfifo)("a FIFO as model.safetensors, config.json or tokenizer.json: FormatError at once (hung before)", async () => {
    for (const f of ["model.safetensors", "config.json", "tokenizer.json"]) {
      const dir = modelDir(`fifo-${f}`, undefined, f);
      await expect(LLM.load(dir, { device: "cpu" })).rejects.toThrow(/is a FIFO, not a regular file/);
    }
  });
  it.skipIf(!hasMkfifo)("numBlocks: 1e9 (RangeError before): InvalidArgumentError before any weight is read", async () => {
    // The weights are a FIFO: a check made after reading them would report the FIFO instead.
    const dir = modelDir("blocks", undefined, "model.safetensors");
    const err = await LLM.load(dir, { device: "cpu", numBlocks: 1e9 }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/a KV cache of 1000000000 blocks x 16 tokens needs .* GiB .* this machine has/);
    await expect(LLM.load(dir, { device: "cpu", blockSize: 0 })).rejects.toThrow(/blockSize must be an integer/);
    await expect(LLM.load(dir, null as never)).rejects.toThrow(/load options must be an object/);
  });
  it("max_position_embeddings 3e7 / 1e9 (99 s and 7.6 GB, or a RangeError, before): RoPE tables sized by the KV cache", async () => {
    for (const maxPos of [3e7, 1e9]) {
      const m = await LLM.load(modelDir(`pos-${maxPos}`, (c) => (c.max_position_embeddings = maxPos)), { device: "cpu" });
      expect(m.config.maxPositionEmbeddings).toBe(maxPos);
      expect(m.engine.maxModelLen).toBe(m.engine.blocks.numBlocks * m.engine.blocks.blockSize);
      expect(m.engine.maxModelLen).toBeLessThanOrEqual(32768);
      const [r] = await m.generate(["Once upon a time"], { maxTokens: 4 });
      expect(r.tokenIds.length).toBe(4);
      m.dispose();
    }
  });
  it("a config with fewer or more layers than the checkpoint is refused", async () => {
    await expect(LLM.load(modelDir("fewer", (c) => (c.num_hidden_layers = 5)), { device: "cpu" })).rejects.toThrow(
      /holds layers up to 5, but config.json declares num_hidden_layers = 5/,
    );
    await expect(LLM.load(modelDir("more", (c) => (c.num_hidden_layers = 7)), { device: "cpu" })).rejects.toThrow(/has no tensors of layer 6/);
  });
  it("a 10 MB prompt is refused after tokenizing a bounded prefix (20 s and 2.6 GB before)", async () => {
    const err = await llm.generate(["Once upon a time ".repeat(600_000)]).catch((e) => e);
    expect(err).toBeInstanceOf(RequestRejectedError);
    expect(err.message).toMatch(/has at least \d+ tokens in its first \d+ characters alone; the model length is 1024/);
    const ids = await llm.tokenizer!.encode("Once upon a time", true, 1024);
    expect(ids.length).toBeGreaterThan(1);
  });
  it("params: null / prompt: null give InvalidArgumentError (TypeError before)", async () => {
    await expect(llm.generate(["hi"], null as never)).rejects.toThrow(InvalidArgumentError);
    await expect(llm.generate(null as never)).rejects.toThrow(/prompts must be a string or an array, got null/);
    await expect(llm.generate([null as never])).rejects.toThrow(/a prompt must be a string or an array of token ids, got null/);
    await expect(llm.engine.addRequest("hi", null as never)).rejects.toThrow(/sampling params must be an object, got null/);
  });
});

describe("tokenizer.json the library would panic on (a process abort)", () => {
  it("a template naming an undefined special token is refused", async () => {
    const json = JSON.parse(readFileSync(join(fixture, "tokenizer.json"), "utf8"));
    json.post_processor.single[0].SpecialToken.id = "<missing>";
    await expect(Tokenizer.fromJson(JSON.stringify(json), "tokenizer.json")).rejects.toThrow(/names the special token "<missing>", which special_tokens does not define/);
    json.post_processor.single[0].SpecialToken.id = "<s>";
    json.post_processor.special_tokens["<s>"].tokens = [];
    await expect(Tokenizer.fromJson(JSON.stringify(json), "tokenizer.json")).rejects.toThrow(/as many tokens/);
  });
  it("a BPE continuing_subword_prefix longer than a merge's second part is refused (found by the fuzz suite)", async () => {
    const json = JSON.parse(readFileSync(join(fixture, "tokenizer.json"), "utf8"));
    json.model.continuing_subword_prefix = "a".repeat(300);
    await expect(Tokenizer.fromJson(JSON.stringify(json), "tokenizer.json")).rejects.toThrow(/merge 0: .* does not carry the 300-byte continuing_subword_prefix/);
  });
});
