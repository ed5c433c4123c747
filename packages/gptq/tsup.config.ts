import { libraryConfig } from "../../tsup.shared";

// The `marlin quantize` command lives in @marlin/cli; its implementation (runCli) is exported here.
export default libraryConfig();
