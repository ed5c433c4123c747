// The packages installed by name from a real registry (a throwaway Verdaccio on 127.0.0.1), as a
// downstream app gets them: tools/release/registry-check.mjs, run in a child process with a time
// limit (it kills Verdaccio and removes its temp folder on every exit). CPU only: the kernel ships
// a CPU-only prebuild here, and the install builds a CPU-only addon from the shipped sources.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const script = resolve(__dirname, "../registry-check.mjs");
const LIMIT_S = 1500;

describe("publish to a local registry, install by name", () => {
  it(
    "installs @marlin/kernel alone, @marlin/engine, the CLI, CommonJS and TypeScript consumers, and builds from source",
    async () => {
      // Asynchronous, so the test worker keeps answering vitest while the check runs for minutes.
      const r = await new Promise<{ status: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [script, "--timeout", String(LIMIT_S - 30)], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (b) => {
          out += b;
        });
        child.stderr.on("data", (b) => {
          out += b;
        });
        const timer = setTimeout(() => child.kill("SIGTERM"), LIMIT_S * 1000); // the check cleans up on SIGTERM
        child.on("close", (status) => {
          clearTimeout(timer);
          resolve({ status, out });
        });
      });
      const out = r.out;
      console.log(out);
      const summary = out.split("\n").find((l) => l.startsWith("REGISTRY-CHECK "));
      expect(summary, "the check printed no summary").toBeDefined();
      const s = JSON.parse(summary!.slice("REGISTRY-CHECK ".length));
      expect(s.failed).toEqual([]);
      expect(s.ok).toEqual(expect.arrayContaining(["pack", "publish", "kernel", "engine", "cjs", "ts", "source"]));
      for (const skipped of s.skipped) console.log(`skipped: ${out.split("\n").find((l) => l.startsWith(`STEP ${skipped} SKIP`))}`);
      expect(r.status).toBe(0);
    },
    LIMIT_S * 1000,
  );
});
