import { libraryConfig } from "../../tsup.shared";

// The soak client is a second entry (@marlin/server/soak): a load test, not part of the server.
export default libraryConfig({ entry: { index: "src/index.ts", soak: "src/soak.ts" } });
