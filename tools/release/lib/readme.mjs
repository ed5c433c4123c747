// The README's examples, as written: its ```ts blocks, and the `npx marlin ...` lines of its ```sh blocks.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./manifest.mjs";

function blocks(lang, file) {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(new RegExp("^```" + lang + "\\n([\\s\\S]*?)^```", "gm"))].map((m) => m[1]);
}

/**
 * The ```ts blocks a consumer of the published packages runs alone: those importing only @marlin/*
 * and node: modules. A client of a running server (the `openai` example) is run by
 * packages/server/test/readme-client.test.ts against a real server instead.
 */
export function readmeTs(file = join(repoRoot, "README.md")) {
  return blocks("ts", file).filter((b) => [...b.matchAll(/from\s+"([^"]+)"/g)].every((m) => /^(@marlin\/|node:)/.test(m[1])));
}

/** The README's ```ts blocks that import the `openai` client. */
export function readmeOpenAiTs(file = join(repoRoot, "README.md")) {
  return blocks("ts", file).filter((b) => /from\s+"openai"/.test(b));
}

export function readmeCliLines(file = join(repoRoot, "README.md")) {
  return blocks("sh", file)
    .flatMap((b) => b.split("\n"))
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("npx marlin "));
}
