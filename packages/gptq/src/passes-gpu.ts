/**
 * The layer passes of whole-model GPTQ on the GPU: the calibration windows' hidden states stay on
 * the device (fp16 [tokens, hidden], two buffers swapped layer by layer), each linear's input is
 * captured by the engine's GPU layer forward and summed into a HessianGpu right there, and the
 * quantized weights go back into the forward as fp16 for the passes that follow. Nothing of size
 * tokens x hidden crosses to the host.
 */
import type { LinearName, LoadedModel } from "@marlin/engine";
import { GpuLayerForward } from "@marlin/engine";
import { CudaEvent, DeviceBuffer, synchronize } from "@marlin/kernel";
import { HessianGpu } from "./gpu.js";
import type { QuantResult } from "./result.js";
import { dequantF16Nk } from "./weights-host.js";

/** Seconds of device time spent in Hessian updates, timed with CUDA events around each. */
class EventTimer {
  private readonly pool: CudaEvent[] = [];
  private used = 0;

  /** Records the start of an interval; record the returned event at its end. */
  begin(): CudaEvent {
    while (this.pool.length < this.used + 2) this.pool.push(new CudaEvent());
    this.pool[this.used].record();
    this.used += 2;
    return this.pool[this.used - 1];
  }

  /** Sum of the recorded intervals (waits for them), then the pool is free again. */
  collect(): number {
    let ms = 0;
    for (let i = 0; i < this.used; i += 2) ms += CudaEvent.elapsedMs(this.pool[i], this.pool[i + 1]);
    this.used = 0;
    return ms / 1000;
  }
}

export interface GpuPassesOptions {
  /** Tokens per forward chunk (whole windows). Default 16384. */
  chunkTokens?: number;
}

export class GpuLayerPasses {
  private readonly fwd: GpuLayerForward;
  private h: DeviceBuffer;
  private spare: DeviceBuffer;
  private readonly seqLens: number[];
  private readonly timer = new EventTimer();

  /** Embeds the windows on the device. */
  constructor(m: LoadedModel, windows: Int32Array[], seqlen: number, opts: GpuPassesOptions = {}) {
    this.seqLens = windows.map((w) => w.length);
    const T = this.seqLens.reduce((a, b) => a + b, 0);
    this.fwd = new GpuLayerForward(m.config, m.sources, { maxSeqLen: seqlen, chunkTokens: opts.chunkTokens, keepIntermediates: true });
    const tokens = new Int32Array(T);
    let at = 0;
    for (const w of windows) {
      tokens.set(w, at);
      at += w.length;
    }
    try {
      this.h = this.fwd.embed(tokens);
      this.spare = DeviceBuffer.alloc(T * m.config.hiddenSize * 2);
    } catch (e) {
      this.fwd.dispose();
      throw e;
    }
  }

  /** Puts layer `li`'s weights on the device. */
  beginLayer(li: number): void {
    this.fwd.loadLayer(li);
  }

  /**
   * The Hessian of `name`'s input over every calibration token, from a pass that stops there.
   * Returns it with the device seconds its updates took (the rest of the pass is forward time).
   */
  hessian(name: LinearName): { hessian: HessianGpu; seconds: number } {
    let acc: HessianGpu | undefined;
    try {
      this.fwd.forward(this.h, this.seqLens, {
        stopAfter: name,
        hook: (n, x) => {
          if (n !== name) return;
          acc ??= new HessianGpu(x.k);
          const end = this.timer.begin();
          acc.add(x.buffer, x.rows, x.byteOffset);
          end.record();
        },
      });
      synchronize(); // the pass's time is device time: wait for it (asynchronous faults surface here)
    } catch (e) {
      acc?.free();
      this.timer.collect();
      throw e;
    }
    return { hessian: acc!, seconds: this.timer.collect() };
  }

  /** The quantized weights replace the dense ones for the passes that follow. */
  setWeight(name: LinearName, r: QuantResult): void {
    this.fwd.setLinearWeight(name, dequantF16Nk(r));
  }

  /** The full layer pass: the next layer's input. */
  advance(): void {
    this.fwd.forward(this.h, this.seqLens, { out: this.spare });
    synchronize();
    [this.h, this.spare] = [this.spare, this.h];
  }

  dispose(): void {
    this.fwd.dispose();
    this.h.free();
    this.spare.free();
  }
}
