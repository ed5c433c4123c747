import type { Rng } from "@marlin/core";

/**
 * One input surface. `run` draws case `index` from `rng` (seeded from the run's seed, the target
 * and the index, so any case replays alone) and resolves when the input is accepted; it throws
 * when refused. A refusal must be a typed @marlin/core error; anything else is counted untyped.
 */
export interface Target {
  name: string;
  run(rng: Rng, index: number): Promise<void>;
}
