#!/usr/bin/env node
/** The `marlin` command. SIGINT/SIGTERM abort the run and remove everything it wrote. */
import { runCli } from "./cli-main.js";

const ac = new AbortController();
let signals = 0;
const onSignal = (sig: NodeJS.Signals) => {
  signals++;
  if (signals > 1) process.exit(130); // a second signal: stop now (the temp dir is hidden and named .partial-*)
  process.stderr.write(`\nmarlin: ${sig}, stopping and removing the partial output...\n`);
  ac.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: ac.signal }).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`marlin: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
