// The README's examples, as written: its ```ts blocks, and the `npx marlin ...` lines of its ```sh blocks.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./manifest.mjs";

function blocks(lang, file) {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(new RegExp("^```" + lang + "\\n([\\s\\S]*?)^```", "gm"))].map((m) => m[1]);
}

export function readmeTs(file = join(repoRoot, "README.md")) {
  return blocks("ts", file);
}

export function readmeCliLines(file = join(repoRoot, "README.md")) {
  return blocks("sh", file)
    .flatMap((b) => b.split("\n"))
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("npx marlin "));
}
