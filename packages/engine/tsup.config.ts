import { libraryConfig } from "../../tsup.shared";

// The tensor-parallel worker is an entry of its own: worker threads start from a file.
export default libraryConfig({ entry: ["src/index.ts", "src/parallel/cpu-rank-worker.ts"] });
