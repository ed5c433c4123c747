/**
 * `marlin quantize`: GPTQ / RTN into a Marlin (or GPTQ) checkpoint. The implementation, its options
 * and exit codes are @marlin/gptq's runCli; this command only routes to it.
 */
import { runCli } from "@marlin/gptq";
import type { Io } from "../args.js";

export function quantize(args: string[], io: Io): Promise<number> {
  return runCli(["quantize", ...args], io);
}
