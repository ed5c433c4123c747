import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "../src/index.js";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The tiny-llama fixture: MARLIN_FIXTURE_DIR, else ../shared/models/tiny-llama beside the checkout. */
export const FIXTURE = process.env.MARLIN_FIXTURE_DIR ?? resolve(pkg, "../../../shared/models/tiny-llama");
export const hasFixture = existsSync(join(FIXTURE, "model.safetensors"));
if (!hasFixture) console.log(`skipping whole-model CLI tests: no tiny-llama fixture at ${FIXTURE} (set MARLIN_FIXTURE_DIR)`);

/** The built command (turbo builds before it tests). */
export const BIN = join(pkg, "dist/main.js");
export const hasBin = existsSync(BIN);
if (!hasBin) console.log(`skipping the tests of the built marlin command: ${BIN} is not built (pnpm --filter @marlin/cli build)`);

/** runCli in this process, with stdout and stderr captured. */
export async function run(args: string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(args, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, signal });
  return { code, out, err };
}

/** The built `marlin` in a child process; `waitFor` resolves with stderr once it matches. */
export function spawnMarlin(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  stderr: () => string;
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  child.stdout.resume(); // JSON logs: not needed here
  const watchers: (() => void)[] = [];
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of watchers) w();
  });
  const exit = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  const waitFor = (re: RegExp, ms = 120_000) =>
    new Promise<RegExpMatchArray>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`timed out waiting for ${re} in:\n${err}`)), ms);
      const check = () => {
        const m = err.match(re);
        if (m) {
          clearTimeout(timer);
          ok(m);
        }
      };
      watchers.push(check);
      void exit.then(() => setTimeout(() => fail(new Error(`marlin exited before ${re}:\n${err}`)), 50));
      check();
    });
  return { child, stderr: () => err, waitFor, exit };
}
