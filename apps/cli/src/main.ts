/** The `marlin` executable: SIGINT / SIGTERM end the command cleanly; a second signal exits at once. */
import { runCli } from "./cli.js";

const ac = new AbortController();
let signals = 0;
const onSignal = (sig: NodeJS.Signals) => {
  if (++signals > 1) process.exit(130);
  process.stderr.write(`\nmarlin: ${sig}, stopping...\n`);
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
