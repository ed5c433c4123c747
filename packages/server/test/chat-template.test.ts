// Where a model's chat template comes from, and how it renders (no model weights needed).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { ApiError, ChatTemplate } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "chat-template-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function modelDir(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

const simple = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
const msgs = [{ role: "user", content: "hi" }];

describe("ChatTemplate", () => {
  test("reads chat_template from tokenizer_config.json with its special tokens", () => {
    const dir = modelDir("string", { "tokenizer_config.json": JSON.stringify({ chat_template: simple, bos_token: { content: "<s>" }, eos_token: "</s>" }) });
    const t = ChatTemplate.fromModelDir(dir)!;
    expect(t.render(msgs, true)).toBe("<s><user>hi<assistant>");
    expect(t.render(msgs, false)).toBe("<s><user>hi");
  });
  test("a list of named templates: 'default' wins; chat_template.jinja wins over both", () => {
    const list = [
      { name: "tool_use", template: "TOOLS" },
      { name: "default", template: "{{ messages[0].content }}!" },
    ];
    const dir = modelDir("list", { "tokenizer_config.json": JSON.stringify({ chat_template: list }) });
    expect(ChatTemplate.fromModelDir(dir)!.render(msgs, true)).toBe("hi!");
    writeFileSync(join(dir, "chat_template.jinja"), "J:{{ messages[0].content }}");
    expect(ChatTemplate.fromModelDir(dir)!.render(msgs, true)).toBe("J:hi");
  });
  test("no template is undefined; an override is used with the model's tokens; errors are typed", () => {
    const dir = modelDir("none", { "tokenizer_config.json": JSON.stringify({ bos_token: "<B>" }) });
    expect(ChatTemplate.fromModelDir(dir)).toBeUndefined();
    expect(ChatTemplate.fromModelDir(dir, simple)!.render(msgs, false)).toBe("<B><user>hi");
    expect(() => ChatTemplate.fromModelDir(dir, "{% for %}")).toThrow(/does not parse/);
    const raising = new ChatTemplate("{{ raise_exception('no') }}");
    expect(() => raising.render(msgs, true)).toThrow(ApiError);
    const broken = modelDir("broken", { "tokenizer_config.json": "{" });
    expect(() => ChatTemplate.fromModelDir(broken)).toThrow(/cannot read JSON/);
  });
});
