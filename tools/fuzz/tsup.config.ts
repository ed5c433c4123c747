import { libraryConfig } from "../../tsup.shared";

// The worker runs as its own process (node dist/worker.js); the CLI replays one case or runs more.
export default libraryConfig({ entry: ["src/index.ts", "src/worker.ts", "src/cli.ts"], format: ["esm"], dts: false });
