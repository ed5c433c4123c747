/**
 * Writing a quantized checkpoint directory. Everything goes into a hidden temporary sibling of the
 * output directory (`.<name>.partial-<pid>-<rand>`), tensors through @marlin/format's streaming
 * writer as each layer finishes, and the directory is renamed into place only when complete; on
 * any error or abort the temporary directory is removed, so nothing half-written is left.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type Checkpoint, packMarlin, type QuantizedLayer, SafetensorsWriter, type TensorSpec, toGptq, toMarlinCheckpoint } from "@marlin/format";
import type { ResolvedOptions } from "./options.js";
import { linearShapes } from "./options.js";

/** Files copied unchanged from the model directory when present. */
const AUX_FILES = [
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "chat_template.jinja",
];

export const WEIGHTS_FILE = "model.safetensors";

/** The `quantization_config` written into config.json; parseQuantizationConfig reads it back. */
export function quantizationConfig(o: ResolvedOptions): Record<string, unknown> {
  const gIdxStored = o.actOrder && o.groupSize > 0 && !o.staticGroups;
  return {
    quant_method: "gptq",
    checkpoint_format: o.format === "marlin" ? "marlin" : "gptq",
    bits: o.bits,
    group_size: o.groupSize,
    // desc_act tells loaders to read g_idx; a Marlin checkpoint never has one (refused upstream).
    desc_act: o.format === "gptq" ? o.actOrder : gIdxStored,
    sym: o.symmetric,
    static_groups: o.staticGroups,
    true_sequential: true,
    damp_percent: o.percDamp,
    lm_head: false,
    quantizer: {
      tool: "@marlin/gptq",
      method: o.method,
      act_order: o.actOrder,
      ...(o.method === "gptq" ? { calibration: { file: basename(o.calib ?? ""), nsamples: o.nsamples, seqlen: o.seqlen, seed: o.seed } } : {}),
    },
  };
}

const MODULE_OF: Record<string, string> = {
  q_proj: "self_attn",
  k_proj: "self_attn",
  v_proj: "self_attn",
  o_proj: "self_attn",
  gate_proj: "mlp",
  up_proj: "mlp",
  down_proj: "mlp",
};

export function linearPrefix(layer: number, name: string): string {
  return `model.layers.${layer}.${MODULE_OF[name]}.${name}`;
}

/** The tensors one quantized linear becomes, in write order. */
function linearSpecs(o: ResolvedOptions, prefix: string, k: number, n: number): TensorSpec[] {
  const groups = o.groupSize > 0 ? k / o.groupSize : 1;
  if (o.format === "marlin") {
    return [
      { name: `${prefix}.B`, dtype: "int32", shape: [k / 16, 2 * n] },
      { name: `${prefix}.s`, dtype: "float16", shape: [groups, n] },
    ];
  }
  const per = 32 / o.bits;
  return [
    { name: `${prefix}.qweight`, dtype: "int32", shape: [k / per, n] },
    { name: `${prefix}.qzeros`, dtype: "int32", shape: [groups, n / per] },
    { name: `${prefix}.scales`, dtype: "float16", shape: [groups, n] },
    { name: `${prefix}.g_idx`, dtype: "int32", shape: [k] },
  ];
}

/** The tensors of a quantized layer in the output format, in the order linearSpecs declares. */
export function linearTensors(o: ResolvedOptions, prefix: string, layer: QuantizedLayer): [string, ArrayBufferView][] {
  if (o.format === "marlin") {
    const t = toMarlinCheckpoint(packMarlin(layer));
    return [
      [`${prefix}.B`, t.B.data],
      [`${prefix}.s`, t.s.data],
    ];
  }
  const g = toGptq(layer, { version: 1 });
  return [
    [`${prefix}.qweight`, g.qweight.data],
    [`${prefix}.qzeros`, g.qzeros.data],
    [`${prefix}.scales`, g.scales.data],
    [`${prefix}.g_idx`, g.g_idx.data],
  ];
}

export class CheckpointOutput {
  readonly tmpDir: string;
  private writer: SafetensorsWriter | undefined;
  private done = false;

  private constructor(
    private readonly o: ResolvedOptions,
    tmpDir: string,
  ) {
    this.tmpDir = tmpDir;
  }

  /**
   * Creates the temporary directory, writes config.json and the copied files, declares every tensor
   * and writes the unquantized ones (embeddings, norms, lm_head, biases) from `ckpt`.
   */
  static async begin(o: ResolvedOptions, ckpt: Checkpoint): Promise<CheckpointOutput> {
    const parent = dirname(o.outDir);
    await mkdir(parent, { recursive: true });
    const tmp = join(parent, `.${basename(o.outDir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(tmp);
    const out = new CheckpointOutput(o, tmp);
    try {
      const config = { ...o.rawConfig, quantization_config: quantizationConfig(o) };
      await writeFile(join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
      for (const f of AUX_FILES) if (existsSync(join(o.modelDir, f))) {
        await copyFile(join(o.modelDir, f), join(tmp, f));
        await chmod(join(tmp, f), 0o644); // sources may be read-only
      }
      const quantized = new Set<string>();
      const qspecs: TensorSpec[] = [];
      for (let li = 0; li < o.config.numLayers; li++)
        for (const { name, k, n } of linearShapes(o.config)) {
          const prefix = `model.layers.${li}.${name}`;
          quantized.add(`${prefix}.weight`);
          qspecs.push(...linearSpecs(o, prefix, k, n));
        }
      const rest = [...ckpt.tensors.entries()].filter(([name]) => !quantized.has(name));
      const specs: TensorSpec[] = [...rest.map(([name, info]) => ({ name, dtype: info.dtype, shape: info.shape.slice() })), ...qspecs];
      out.writer = await SafetensorsWriter.create(join(tmp, WEIGHTS_FILE), specs, { format: "pt" });
      for (const [name] of rest) await out.writer.write(name, (await ckpt.read(name)).data);
    } catch (e) {
      await out.abort();
      throw e;
    }
    return out;
  }

  /** Writes one quantized linear (layers in order, linears in q, k, v, o, gate, up, down order). */
  async writeLinear(layer: number, name: string, q: QuantizedLayer): Promise<void> {
    if (!this.writer) throw new Error("checkpoint output is closed");
    for (const [t, data] of linearTensors(this.o, linearPrefix(layer, name), q)) await this.writer.write(t, data);
  }

  /** Closes the weights file and moves the directory into place (replacing an empty or forced one). */
  async finish(): Promise<void> {
    if (!this.writer) throw new Error("checkpoint output is closed");
    await this.writer.close();
    this.writer = undefined;
    const out = this.o.outDir;
    if (existsSync(out)) {
      if ((await readdir(out)).length > 0 && !this.o.force) throw new Error(`${out} appeared during the run and is not empty`);
      await rm(out, { recursive: true, force: true });
    }
    await rename(this.tmpDir, out);
    this.done = true;
  }

  /** Removes everything written so far. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.done) return;
    const w = this.writer;
    this.writer = undefined;
    if (w) await w.abort().catch(() => undefined);
    await rm(this.tmpDir, { recursive: true, force: true });
  }
}
