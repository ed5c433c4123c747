/** Placeholder replaced below. */
import { NoDeviceError } from "@marlin/core";
import type { ModelRunner } from "../core/runner.js";
import type { ModelConfig } from "../model/config.js";
import type { ModelSources } from "../model/weights.js";

export const GpuModelRunner = {
  async create(_c: ModelConfig, _s: ModelSources, _o: unknown): Promise<ModelRunner> {
    throw new NoDeviceError("the GPU runner is not built yet");
  },
};
