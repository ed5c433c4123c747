/**
 * Whole-model quantization: load a model with the engine, draw calibration windows from a text file
 * through the model's tokenizer, then quantize decoder layer by decoder layer, in order, each part
 * seeing the already-quantized earlier parts ("true sequential"):
 *   q/k/v (one Hessian of the attention input) -> o_proj -> gate/up -> down_proj,
 * each Hessian captured by a partial forward pass of the layer (the pass stops at the input it
 * needs), then a full pass gives the next layer's input. The result is streamed into a checkpoint
 * (see checkpoint.ts) that the engine loads.
 *
 * Device "cpu" runs the passes on the engine's CPU model (fp32) and GPTQ in float64; device "cuda"
 * runs them with the engine's GPU layer forward (fp16 activations kept on the device, see
 * passes-gpu.ts) and GPTQ on the GPU straight from the device Hessians.
 */
import { MarlinError, Rng } from "@marlin/core";
import { CpuLlama, type LinearName, type LoadedModel, loadModelDir } from "@marlin/engine";
import type { QuantizedLayer } from "@marlin/format";
import { openCheckpoint } from "@marlin/format";
import { readCalibrationLines, sampleCalibration, tokenStream } from "./calibration.js";
import { CheckpointOutput } from "./checkpoint.js";
import { gptqQuantize } from "./gptq.js";
import { gptqQuantizeGpu, type HessianGpu } from "./gpu.js";
import { CpuHessian } from "./hessian-cpu.js";
import { toQuantizedLayer } from "./layer.js";
import { type QuantizeModelOptions, type ResolvedOptions, resolveQuantizeOptions } from "./options.js";
import { GpuLayerPasses } from "./passes-gpu.js";
import { formatDuration, Progress, type ProgressSink } from "./progress.js";
import { dequantize, hessianError, type QuantResult } from "./result.js";
import { rtnQuantize } from "./rtn.js";
import { transposeF32, weightKn } from "./weights-host.js";

/** The run was interrupted (AbortSignal, SIGINT/SIGTERM in the CLI); nothing was left behind. */
export class QuantizeAbortedError extends MarlinError {
  constructor(reason = "interrupted") {
    super("ERR_MARLIN_ABORTED", `quantization ${reason}; nothing was written`);
  }
}

export interface LinearReport {
  layer: number;
  name: LinearName;
  k: number;
  n: number;
  /** tr(D^T H D) of this linear's error on its calibration inputs (GPTQ runs; NaN for RTN). */
  loss: number;
  /** The same for round-to-nearest of the same weights (when compareRtn). */
  rtnLoss?: number;
  percDamp?: number;
}

export interface QuantizeRunOptions extends QuantizeModelOptions {
  /** Progress bar sink (default stderr); false for none. */
  progress?: ProgressSink | false;
  signal?: AbortSignal;
  /** Also quantize each linear with RTN and report both Hessian-weighted losses (slow, for checks). */
  compareRtn?: boolean;
  /** Called after each linear is written (tests use it to interrupt a run). */
  onLinear?: (r: LinearReport) => void;
}

export interface QuantizeModelResult {
  outDir: string;
  options: Omit<ResolvedOptions, "rawConfig" | "config">;
  linears: LinearReport[];
  /** The quantized model in memory (quantized LinearSources), as the engine would load it. */
  model: LoadedModel;
  /** Seconds per phase: load, calibration, forward, hessian, quantize, write. */
  phases: Record<string, number>;
  seconds: number;
}

/** Groups of linears quantized together: one Hessian each, in forward order. */
const STAGES: LinearName[][] = [["q_proj", "k_proj", "v_proj"], ["o_proj"], ["gate_proj", "up_proj"], ["down_proj"]];

/** Thrown by the capture hook to end a layer pass once the needed input was seen. */
class StopPass extends Error {}

/** Dequantized weights as the engine's W [n, k] (what the later passes must see). */
const dequantNk = (r: QuantResult): Float32Array => transposeF32(dequantize(r), r.k, r.n);

/** Lets pending signals (SIGINT) run between long synchronous steps, then honours an abort. */
async function checkpointYield(signal?: AbortSignal): Promise<void> {
  await new Promise((r) => setImmediate(r));
  if (signal?.aborted) throw new QuantizeAbortedError();
}

/** Calibration windows of `seqlen` tokens drawn (seeded) from the text through the tokenizer. */
export async function calibrationWindows(m: LoadedModel, file: string, nsamples: number, seqlen: number, seed: number): Promise<Int32Array[]> {
  if (!m.tokenizer) throw new MarlinError("ERR_MARLIN_INVALID_ARGUMENT", "the model has no tokenizer");
  const lines = readCalibrationLines(file);
  const enc = await m.tokenizer.encodeBatch(lines, true);
  const eos = m.defaults.eosTokenIds[0];
  return sampleCalibration(tokenStream(enc, eos), nsamples, seqlen, new Rng(seed));
}

/**
 * Quantizes the model in `modelDir` into a checkpoint in `outDir` (see QuantizeModelOptions).
 * Every option is checked before anything runs; on any error or abort nothing is left in outDir.
 */
export async function quantizeModel(modelDir: string, outDir: string, opts: QuantizeRunOptions = {}): Promise<QuantizeModelResult> {
  const o = resolveQuantizeOptions(modelDir, outDir, opts);
  const t0 = performance.now();
  const phases: Record<string, number> = { load: 0, calibration: 0, forward: 0, hessian: 0, quantize: 0, write: 0 };
  const timed = <T>(phase: string, f: () => T): T => {
    const s = performance.now();
    try {
      return f();
    } finally {
      phases[phase] += (performance.now() - s) / 1000;
    }
  };
  const timedAsync = async <T>(phase: string, f: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    try {
      return await f();
    } finally {
      phases[phase] += (performance.now() - s) / 1000;
    }
  };
  if (opts.signal?.aborted) throw new QuantizeAbortedError();

  const m = await timedAsync("load", () => loadModelDir(o.modelDir));
  const cfg = m.config;
  const gptq = o.method === "gptq";
  const windows = gptq ? await timedAsync("calibration", () => calibrationWindows(m, o.calib!, o.nsamples, o.seqlen, o.seed)) : [];

  const ckpt = await openCheckpoint(o.modelDir);
  let out: CheckpointOutput | undefined;
  let gpu: GpuLayerPasses | undefined;
  const linears: LinearReport[] = [];
  try {
    out = await timedAsync("write", () => CheckpointOutput.begin(o, ckpt));
    await checkpointYield(opts.signal);
    // The layer passes run on the CPU model (fp32), or on the GPU (device "cuda": the engine's GPU
    // layer forward, Hessians summed on the device from the captured fp16 inputs).
    const onGpu = gptq && o.device === "cuda";
    const model = gptq && !onGpu ? new CpuLlama(cfg, m.sources, o.seqlen) : undefined;
    gpu = onGpu ? timed("forward", () => new GpuLayerPasses(m, windows, o.seqlen)) : undefined;
    const seqLens = windows.map((w) => w.length);
    let h = model ? timed("forward", () => model.embedTokens(Int32Array.from(windows.flatMap((w) => Array.from(w))))) : undefined;
    // Progress in layers; a stage counts as its share of the layer's weights (k * n), so the ETA
    // weighs the big MLP stages more.
    const stageCost = (names: LinearName[]) => names.reduce((a, nm) => a + m.sources.layers[0].linears[nm].k * m.sources.layers[0].linears[nm].n, 0);
    const perLayer = STAGES.reduce((a, s) => a + stageCost(s), 0);
    const progress = opts.progress === false ? undefined : new Progress(cfg.numLayers, { label: `${o.method} ${o.bits}-bit`, sink: opts.progress });
    const gopts = { bits: o.bits, groupSize: o.groupSize, symmetric: o.symmetric, actOrder: o.actOrder, staticGroups: o.staticGroups, percDamp: o.percDamp, clip: o.clip, sparsity: o.sparsity, prune: o.prune };

    for (let li = 0; li < cfg.numLayers; li++) {
      const L = m.sources.layers[li];
      const g = gpu;
      if (g) timed("forward", () => g.beginLayer(li));
      for (const stage of STAGES) {
        progress?.update(`layer ${li + 1}/${cfg.numLayers} ${stage.join(",")}`);
        let H: Float64Array | undefined;
        let Hgpu: HessianGpu | undefined;
        if (model && h) {
          let acc: CpuHessian | undefined;
          const first = stage[0];
          const hcur = h;
          timed("forward", () => {
            try {
              model.layerForward(li, hcur, seqLens, (_l, name, x, rows, k) => {
                if (name !== first) return;
                acc = new CpuHessian(k);
                timed("hessian", () => acc!.add(x, rows));
                throw new StopPass();
              });
            } catch (e) {
              if (!(e instanceof StopPass)) throw e;
            }
          });
          H = acc!.matrix;
        } else if (g) {
          const r = timed("forward", () => g.hessian(stage[0]));
          phases.hessian += r.seconds;
          Hgpu = r.hessian;
          // The host copy only for the RTN comparison (k x k, small next to the layer).
          if (opts.compareRtn) H = Hgpu.download();
        }
        try {
          for (const name of stage) {
            const src = L.linears[name];
            const { k, n } = src;
            const w = model ? transposeF32(model.getLinearWeight(li, name), n, k) : timed("quantize", () => weightKn(src)); // [k, n]
            const r = timed("quantize", () =>
              gptq ? (Hgpu ? gptqQuantizeGpu(w, Hgpu, gopts) : o.device === "cuda" ? gptqQuantizeGpu(w, H!, gopts) : gptqQuantize(w, H!, gopts)) : rtnQuantize(w, k, { bits: o.bits, groupSize: o.groupSize, symmetric: o.symmetric, clip: o.clip }),
            );
            const layer: QuantizedLayer = timed("quantize", () => toQuantizedLayer(r));
            const report: LinearReport = { layer: li, name, k, n, loss: Number.NaN, ...(gptq ? { percDamp: r.percDamp } : {}) };
            if (H && opts.compareRtn) {
              const dq = dequantize(r);
              report.loss = hessianError(w, dq, H, k, n);
              report.rtnLoss = rtnQuantize(w, k, { bits: o.bits, groupSize: o.groupSize, symmetric: o.symmetric, hessian: H }).lossEstimate;
            }
            if (model) model.setLinearWeight(li, name, dequantNk(r));
            if (g) timed("quantize", () => g.setWeight(name, r));
            L.linears[name] = { kind: "quantized", n, k, layer, bias: src.bias, name: src.name };
            await timedAsync("write", () => out!.writeLinear(li, name, layer));
            linears.push(report);
            opts.onLinear?.(report);
          }
        } finally {
          Hgpu?.free();
        }
        progress?.tick(stageCost(stage) / perLayer, `layer ${li + 1}/${cfg.numLayers} ${stage.join(",")}`);
        await checkpointYield(opts.signal);
      }
      if (model && h) {
        const hin = h;
        h = timed("forward", () => model.layerForward(li, hin, seqLens));
      }
      if (g) timed("forward", () => g.advance());
    }
    // The hessian timer ran inside the forward timer: report them apart.
    phases.forward -= phases.hessian;
    await timedAsync("write", () => out!.finish());
  } catch (e) {
    await out?.abort();
    throw e;
  } finally {
    gpu?.dispose();
    await ckpt.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  if (opts.progress !== false) {
    const sink = opts.progress ?? process.stderr;
    sink.write(`${formatPhases(phases, seconds)}\n`);
  }
  const { rawConfig: _r, config: _c, ...options } = o;
  return { outDir: o.outDir, options, linears, model: m, phases, seconds };
}


/** "total 1m02s: load 1s, calibration 0s, forward 20s, ..." */
export function formatPhases(phases: Record<string, number>, seconds: number): string {
  const parts = Object.entries(phases).map(([k, v]) => `${k} ${v < 10 ? v.toFixed(1) : formatDuration(v)}${v < 10 ? "s" : ""}`);
  return `total ${formatDuration(seconds)}: ${parts.join(", ")}`;
}
