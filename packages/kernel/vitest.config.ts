import { mergeConfig } from "vitest/config";
import shared from "../../vitest.shared";

// --expose-gc lets the device-buffer test check that collected buffers free their memory.
export default mergeConfig(shared, {
  test: { pool: "forks", poolOptions: { forks: { execArgv: ["--expose-gc"] } } },
});
