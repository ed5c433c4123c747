/**
 * MarlinLayer: a quantized linear layer that owns its packed weights (on a GPU or on the host) and
 * runs forward(x) through the kernel of its location.
 */
import { type ActivationDType, DisposedError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { f16ToF32, f32ToBf16, type MarlinLayer as PackedLayer, packMarlin, type QuantizedLayer } from "@marlin/format";
import { DeviceBuffer } from "./buffer.js";
import { hasGpu } from "./device.js";
import { type DeviceMarlinWeights, type HostMarlinWeights, type MarlinTuning, marlinMatmul, marlinShapeRefusal } from "./marlin.js";
import { checkDType, forwardInto, inferRows, type Operand } from "./operand.js";
import type { Stream } from "./stream.js";
import type { MarlinWorkspace } from "./workspace.js";

export type Placement = "cuda" | "cpu";

export interface LayerOptions {
  /** "cuda" (device 0), "cpu", or a device index. Default: the GPU when there is one. */
  device?: Placement | number;
  /** Activation dtype; scales must be stored in it (fp16 bits from @marlin/format are converted for bf16). */
  dtype?: ActivationDType;
  /** Bias [n] as fp16/bf16 bits of `dtype`. */
  bias?: Uint16Array;
  workspace?: MarlinWorkspace;
}

export interface ForwardOptions {
  /** Rows of x (inferred from its size when omitted). */
  m?: number;
  /** Output to write (allocated when omitted). */
  out?: Operand;
  stream?: Stream;
  tuning?: MarlinTuning;
}

/** fp16 bits -> bf16 bits (exact through fp32, rounded to nearest even). */
const f16ToBf16Bits = (src: Uint16Array): Uint16Array => f32ToBf16(f16ToF32(src));

export class MarlinLayer {
  readonly k: number;
  readonly n: number;
  readonly bits: 4 | 8;
  readonly groupSize: number;
  readonly zeroPoints: boolean;
  readonly actOrder: boolean;
  readonly dtype: ActivationDType;
  readonly placement: Placement;
  readonly device: number;
  private host?: HostMarlinWeights;
  private dev?: DeviceMarlinWeights;
  private readonly workspace?: MarlinWorkspace;
  private disposed = false;

  private constructor(packed: PackedLayer, opts: LayerOptions) {
    const dtype = opts.dtype ?? "float16";
    checkDType(dtype);
    const why = marlinShapeRefusal({
      n: packed.n,
      k: packed.k,
      bits: packed.bits,
      groupSize: packed.groupSize,
      zeroPoints: !packed.symmetric,
    });
    if (why) throw new ShapeError(why);
    if (packed.perm) {
      // The kernel reads one scale row per group of consecutive packed rows: act-order groups
      // must all hold groupSize rows (true for GPTQ checkpoints).
      const g = packed.gIdx;
      if (!g || packed.groupSize <= 0) throw new InvalidArgumentError("act-order needs gIdx and a group size");
      for (let i = 0; i < packed.k; i++)
        if (g[i] !== Math.floor(i / packed.groupSize))
          throw new InvalidArgumentError("act-order groups must each hold exactly groupSize rows (g_idx is not a permutation of i / groupSize)");
    }
    if (opts.bias && opts.bias.length !== packed.n) throw new ShapeError(`bias has ${opts.bias.length} elements, expected n = ${packed.n}`);
    const d = opts.device ?? (hasGpu() ? "cuda" : "cpu");
    this.placement = d === "cpu" ? "cpu" : "cuda";
    this.device = typeof d === "number" ? d : 0;
    this.k = packed.k;
    this.n = packed.n;
    this.bits = packed.bits;
    this.groupSize = packed.groupSize === packed.k ? -1 : packed.groupSize;
    this.zeroPoints = !packed.symmetric;
    this.actOrder = packed.perm !== undefined;
    this.dtype = dtype;
    this.workspace = opts.workspace;
    const host: HostMarlinWeights = {
      k: this.k,
      n: this.n,
      bits: this.bits,
      groupSize: this.groupSize,
      qweight: packed.qweight,
      scales: dtype === "bfloat16" ? f16ToBf16Bits(packed.scales) : packed.scales,
      zeros: packed.zeros,
      perm: packed.perm,
      bias: opts.bias,
    };
    if (this.placement === "cpu") {
      this.host = host;
      return;
    }
    const uploaded: DeviceBuffer[] = [];
    const up = (a: ArrayBufferView) => {
      const b = DeviceBuffer.from(a, this.device);
      uploaded.push(b);
      return b;
    };
    try {
      this.dev = {
        k: this.k,
        n: this.n,
        bits: this.bits,
        groupSize: this.groupSize,
        qweight: up(host.qweight),
        scales: up(host.scales),
        zeros: host.zeros ? up(host.zeros) : undefined,
        perm: host.perm ? up(host.perm) : undefined,
        bias: host.bias ? up(host.bias) : undefined,
      };
    } catch (err) {
      for (const b of uploaded) b.free();
      throw err;
    }
  }

  /** Packs a quantized layer (@marlin/format's QuantizedLayer) and places it. */
  static fromQuantized(layer: QuantizedLayer, opts: LayerOptions = {}): MarlinLayer {
    return new MarlinLayer(packMarlin(layer), opts);
  }

  /** Places an already packed layer (e.g. from a `checkpoint_format: marlin` checkpoint). */
  static fromPacked(packed: PackedLayer, opts: LayerOptions = {}): MarlinLayer {
    return new MarlinLayer(packed, opts);
  }

  /** The weights as passed to marlinMatmul (device buffers or host arrays). */
  get weights(): DeviceMarlinWeights | HostMarlinWeights {
    if (this.disposed) throw new DisposedError("MarlinLayer");
    return (this.dev ?? this.host)!;
  }

  /**
   * out[m, n] = x[m, k] * W (+ bias). x must live where the layer lives; the result is the same kind
   * as x (a DeviceBuffer for a DeviceBuffer, fp16/bf16 bits for a Uint16Array), or `opts.out`.
   */
  forward(x: DeviceBuffer, opts?: ForwardOptions): DeviceBuffer;
  forward(x: Uint16Array, opts?: ForwardOptions): Uint16Array;
  forward(x: Operand, opts?: ForwardOptions): Operand;
  forward(x: Operand, opts: ForwardOptions = {}): Operand {
    if (this.disposed) throw new DisposedError("MarlinLayer");
    const m = opts.m ?? inferRows("x", x, this.k);
    return forwardInto(x, opts.out, m, this.n, this.placement === "cuda", (out) =>
      marlinMatmul({ x, out, m, weights: this.weights, dtype: this.dtype, workspace: this.workspace, stream: opts.stream, tuning: opts.tuning }),
    );
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.dev) {
      for (const b of [this.dev.qweight, this.dev.scales, this.dev.zeros, this.dev.perm, this.dev.bias]) b?.free();
    }
    this.dev = undefined;
    this.host = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
