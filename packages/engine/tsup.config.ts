import { libraryConfig } from "../../tsup.shared";

// The tensor-parallel workers (CPU, GPU) are entries of their own: worker threads start from a file.
export default libraryConfig({ entry: ["src/index.ts", "src/parallel/cpu-rank-worker.ts", "src/parallel/gpu-rank-worker.ts"] });
