// The README's `openai` client example, as written, against a real server on tiny-llama (CPU): the
// block is taken from README.md and run by node from this package (which has `openai`). Port 8000 is
// the README's; when it is taken, the block's base URL is pointed at the port the server got.
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runSeed } from "@marlin/core";
import { LLM, loadModelDir } from "@marlin/engine";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createServer, type MarlinServer } from "../src/index.js";
import { FIXTURE, hasFixture } from "./fixture.js";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(pkg, "../../README.md");

function openAiBlock(): string {
  const blocks = [...readFileSync(README, "utf8").matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const b = blocks.find((x) => /from\s+"openai"/.test(x));
  if (!b) throw new Error("README.md has no ```ts block importing openai");
  return b;
}

function runNode(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [file], { cwd: pkg, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, out });
    });
  });
}

describe.skipIf(!hasFixture)("the README's openai client example", () => {
  const seed = runSeed();
  let server: MarlinServer;
  let base: string;

  beforeAll(async () => {
    const llm = await LLM.fromLoaded(await loadModelDir(FIXTURE), { device: "cpu", seed });
    server = await createServer(llm, { modelDir: FIXTURE, logger: false });
    try {
      base = await server.listen({ host: "127.0.0.1", port: 8000 });
    } catch {
      base = await server.listen({ host: "127.0.0.1", port: 0 });
    }
  }, 120_000);

  afterAll(async () => {
    await server?.shutdown({ deadlineMs: 1000 });
  });

  test("streams a completion from a real server", async () => {
    let code = openAiBlock();
    const port = new URL(base).port;
    if (port !== "8000") code = code.replace("127.0.0.1:8000", `127.0.0.1:${port}`);
    console.log(`README openai example against ${base} (seed ${seed})`);
    // The block is plain JavaScript apart from its fence; an .mjs beside package.json resolves `openai`.
    const file = join(pkg, `.readme-client-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      const r = await runNode(file);
      console.log(`it printed: ${JSON.stringify(r.out.slice(0, 200))}`);
      expect(r.code, r.out).toBe(0);
      expect(r.out.trim().length).toBeGreaterThan(0);
    } finally {
      rmSync(file, { force: true });
    }
  }, 120_000);
});
