/** What the CPU and GPU tensor-parallel runners share about their rank worker threads. */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Worker } from "node:worker_threads";
import { NativeLoadError } from "@marlin/core";

/**
 * A rank worker's entry (`cpu-rank-worker`, `gpu-rank-worker`): beside the bundle (dist), or the
 * package's dist when running from src (tests).
 */
export function rankWorkerUrl(name: "cpu-rank-worker" | "gpu-rank-worker"): URL {
  const candidates = [new URL(`./parallel/${name}.js`, import.meta.url), new URL(`../../dist/parallel/${name}.js`, import.meta.url)];
  const found = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!found) throw new NativeLoadError(`the tensor-parallel worker script is missing (looked for ${candidates.map((u) => fileURLToPath(u)).join(", ")}); build @marlin/engine`);
  return found;
}

/**
 * Watches ranks 1..tp-1 once loaded: an error reply, a worker error or an exit before `disposed()`
 * is handed to `record`, which keeps the group's first failure and returns it; after a worker error
 * that failure also aborts `comm`, so the peers' pending collectives wake. The workers never keep
 * the process alive on their own.
 */
export function watchRankWorkers(workers: Worker[], comm: { abort(reason: string): void }, record: (reason: string) => string, disposed: () => boolean): void {
  workers.forEach((w, i) => {
    w.on("message", (m: { type: string; message?: string }) => {
      if (m.type === "error") record(m.message ?? `rank ${i + 1} failed`);
    });
    w.on("error", (e) => comm.abort(record(`rank ${i + 1}: ${e.message}`)));
    w.on("exit", (code) => {
      if (!disposed()) record(`rank ${i + 1} exited (code ${code})`);
    });
    w.unref();
  });
}
