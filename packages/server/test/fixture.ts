import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "@marlin/core";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The tiny-llama fixture: MARLIN_FIXTURE_DIR, else ../shared/models/tiny-llama beside the checkout. */
export const FIXTURE = process.env.MARLIN_FIXTURE_DIR ?? resolve(pkg, "../../../shared/models/tiny-llama");
export const hasFixture = existsSync(join(FIXTURE, "model.safetensors"));
if (!hasFixture) console.log(`skipping server tests: no tiny-llama fixture at ${FIXTURE} (set MARLIN_FIXTURE_DIR)`);

/** `count` prompts from calib.txt (seeded): whole lines or their first words. */
export function calibPrompts(seed: number, count: number): string[] {
  const lines = readFileSync(join(FIXTURE, "calib.txt"), "utf8").split("\n").filter((l) => l.length > 30);
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const words = lines[rng.int(0, lines.length)].split(" ");
    return words.slice(0, rng.int(3, Math.min(words.length, 40) + 1)).join(" ");
  });
}

/** A Llama-2-style chat template (tiny-llama ships none); it refuses a conversation not opened by the user. */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('the first message must not be the assistant') }}{% endif %}" +
  "{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>> {{ m['content'] }} <</SYS>>\n{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]" +
  "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}";

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects JSON log lines (pino) written by a server. */
export class LogSink {
  readonly lines: Record<string, unknown>[] = [];
  write(s: string): void {
    for (const l of s.split("\n")) if (l.trim()) this.lines.push(JSON.parse(l));
  }
  requests(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === "request");
  }
}
