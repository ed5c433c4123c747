// The server side of soak.mjs, in its own process so its resident memory is its own:
//   node bench/soak-server.mjs <model-dir> '<json ServerOptions>'
// Prints {"url": ...} once listening; SIGTERM shuts it down gracefully (exit 0).
import { createServer } from "../dist/index.js";

const [dir, json = "{}"] = process.argv.slice(2);
const server = await createServer(dir, { logger: false, ...JSON.parse(json) });
const url = await server.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ url, pid: process.pid })}\n`);
process.once("SIGTERM", () => server.shutdown({ deadlineMs: 5000 }).then(() => process.exit(0)));
