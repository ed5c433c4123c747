/**
 * Writing a quantized checkpoint directory. Everything goes into a hidden temporary sibling of the
 * output directory (`.<name>.partial-<pid>-<rand>`), tensors through @marlin/format's streaming
 * writer as each layer finishes, and the directory is renamed into place only when complete; on
 * any error or abort the temporary directory is removed, so nothing half-written is left. A run
 * killed outright (SIGKILL, power loss) cannot clean up: the next run into the same parent
 * removes every `.<name>.partial-<pid>-*` whose process no longer exists. File system failures
 * are IoError naming the path (EROFS, ENOSPC, EACCES, ...); free space is checked before writing.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, statfs, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { IoError, ShapeError } from "@marlin/core";
import {
  type Checkpoint,
  FILE_LIMITS,
  ioError,
  packMarlin,
  planHeader,
  type QuantizedLayer,
  readRegularFileSync,
  SafetensorsWriter,
  type TensorSpec,
  toGptq,
  toMarlinCheckpoint,
  withIo,
} from "@marlin/format";
import { packSparse24, SPARSE24_TENSORS, sparse24Shapes, sparse24Tensors } from "@marlin/sparse";
import type { ResolvedOptions } from "./options.js";
import { linearShapes } from "./options.js";
import { first24CodeViolation } from "./sparsity.js";

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
    // A 2:4-pruned layer is @marlin/sparse's packed layout in a Marlin checkpoint and dense GPTQ
    // tensors (exact zeros) in a GPTQ one; these keys record the pruning.
    ...(o.sparsity ? { sparsity: o.sparsity, prune_method: o.prune ?? "sparsegpt" } : {}),
    quantizer: {
      tool: "@marlin/gptq",
      method: o.method,
      act_order: o.actOrder,
      clip: o.clip !== false,
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

/**
 * How one quantized linear [k inputs, n outputs] is stored: the tensors declared in the header
 * before any data (`specs`, in write order) and the function that produces their data from the
 * layer (`tensors`, same names and order). The ONE place that decides the per-linear layout (the
 * header is planned from `specs`, writeLinear writes `tensors`): a 2:4 layer in a Marlin checkpoint
 * is @marlin/sparse's packed layout, in a GPTQ checkpoint dense tensors with exact zeros.
 */
export function linearLayout(
  o: ResolvedOptions,
  prefix: string,
  k: number,
  n: number,
): { specs: TensorSpec[]; tensors: (layer: QuantizedLayer) => [string, ArrayBufferView][] } {
  const groups = o.groupSize > 0 ? k / o.groupSize : 1;
  if (o.format === "marlin" && o.sparsity === "2:4") {
    // @marlin/sparse's packed 2:4 layout (kept codes, mma.sp metadata, scales); the engine
    // recognises these tensors and serves them with the sparse24 implementations.
    const sh = sparse24Shapes(k, n, o.groupSize);
    return {
      specs: [
        { name: `${prefix}.${SPARSE24_TENSORS.values}`, dtype: "int32", shape: sh.values },
        { name: `${prefix}.${SPARSE24_TENSORS.meta}`, dtype: "int32", shape: sh.meta },
        { name: `${prefix}.${SPARSE24_TENSORS.scales}`, dtype: "float16", shape: sh.scales },
      ],
      tensors: (layer) => Object.entries(sparse24Tensors(prefix, packSparse24(layer))).map(([name, t]) => [name, t.data]),
    };
  }
  if (o.format === "marlin") {
    return {
      specs: [
        { name: `${prefix}.B`, dtype: "int32", shape: [k / 16, 2 * n] },
        { name: `${prefix}.s`, dtype: "float16", shape: [groups, n] },
      ],
      tensors: (layer) => {
        const t = toMarlinCheckpoint(packMarlin(layer));
        return [
          [`${prefix}.B`, t.B.data],
          [`${prefix}.s`, t.s.data],
        ];
      },
    };
  }
  const per = 32 / o.bits;
  return {
    specs: [
      { name: `${prefix}.qweight`, dtype: "int32", shape: [k / per, n] },
      { name: `${prefix}.qzeros`, dtype: "int32", shape: [groups, n / per] },
      { name: `${prefix}.scales`, dtype: "float16", shape: [groups, n] },
      { name: `${prefix}.g_idx`, dtype: "int32", shape: [k] },
    ],
    tensors: (layer) => {
      const g = toGptq(layer, { version: 1 });
      return [
        [`${prefix}.qweight`, g.qweight.data],
        [`${prefix}.qzeros`, g.qzeros.data],
        [`${prefix}.scales`, g.scales.data],
        [`${prefix}.g_idx`, g.g_idx.data],
      ];
    },
  };
}

/** The tensors of a quantized layer in the output format (linearLayout's data). */
export function linearTensors(o: ResolvedOptions, prefix: string, layer: QuantizedLayer): [string, ArrayBufferView][] {
  return linearLayout(o, prefix, layer.k, layer.n).tensors(layer);
}

/** True when process `pid` exists (EPERM: it does, as another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes hidden `.<name>.partial-<pid>-<hex>` folders of runs into `outDir`: "stale" ones, whose
 * process is gone (killed before it could clean up; folders of live runs are left alone), or this
 * process's "own" (an interrupted CLI that stops without waiting for the step in flight). Returns
 * the paths removed.
 */
export async function removePartials(outDir: string, which: "stale" | "own" = "stale"): Promise<string[]> {
  const parent = dirname(outDir);
  const prefix = `.${basename(outDir)}.partial-`;
  let entries: string[];
  try {
    entries = await readdir(parent);
  } catch {
    return []; // no parent yet: nothing to clean
  }
  const removed: string[] = [];
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(e.slice(prefix.length));
    const own = m !== null && Number(m[1]) === process.pid;
    if (!m || (which === "own" ? !own : own || alive(Number(m[1])))) continue;
    await withIo("remove this stale partial output", join(parent, e), () => rm(join(parent, e), { recursive: true, force: true }));
    removed.push(join(parent, e));
  }
  return removed;
}

/** Refuses (IoError, ENOSPC) when the file system of `dir` has fewer than `bytes` free. */
async function checkFreeSpace(dir: string, bytes: number): Promise<void> {
  const st = await withIo("check the free space", dir, () => statfs(dir));
  const free = st.bavail * st.bsize;
  if (free < bytes) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    throw new IoError(`cannot write the checkpoint: it needs ${mib(bytes)}, the file system has ${mib(free)} free (ENOSPC)`, dir, { syscallCode: "ENOSPC" });
  }
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
    await withIo("create the directory", parent, () => mkdir(parent, { recursive: true }));
    await removePartials(o.outDir, "stale");
    const { specs, copied } = outputSpecs(o, ckpt);
    await checkFreeSpace(parent, planHeader(specs, { format: "pt" }).dataSize + (1 << 20));
    const tmp = join(parent, `.${basename(o.outDir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
    await withIo("create the directory", tmp, () => mkdir(tmp));
    const out = new CheckpointOutput(o, tmp);
    try {
      const config = { ...o.rawConfig, quantization_config: quantizationConfig(o) };
      await withIo("write", join(tmp, "config.json"), () => writeFile(join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`));
      for (const f of AUX_FILES)
        if (existsSync(join(o.modelDir, f))) {
          // Read as a regular file (a FIFO would block copyFile); written 0644 (sources may be read-only).
          const bytes = readRegularFileSync(join(o.modelDir, f), FILE_LIMITS.tokenizer);
          await withIo("write", join(tmp, f), () => writeFile(join(tmp, f), bytes, { mode: 0o644 }));
        }
      out.writer = await SafetensorsWriter.create(join(tmp, WEIGHTS_FILE), specs, { format: "pt" });
      for (const name of copied) await out.writer.write(name, (await ckpt.read(name)).data);
    } catch (e) {
      await out.abort();
      throw ioError(e, "write", tmp);
    }
    return out;
  }

  /** Writes one quantized linear (layers in order, linears in q, k, v, o, gate, up, down order). */
  async writeLinear(layer: number, name: string, q: QuantizedLayer): Promise<void> {
    if (!this.writer) throw new Error("checkpoint output is closed");
    if (this.o.sparsity) {
      const bad = first24CodeViolation(q);
      if (bad) throw new ShapeError(`${linearPrefix(layer, name)}: the quad at rows ${bad.row}..${bad.row + 3}, column ${bad.col} has ${bad.zeros} zero weights; a 2:4 checkpoint needs at least 2`);
    }
    for (const [t, data] of linearTensors(this.o, linearPrefix(layer, name), q)) await this.writer.write(t, data);
  }

  /** Closes the weights file and moves the directory into place (replacing an empty or forced one). */
  async finish(): Promise<void> {
    if (!this.writer) throw new Error("checkpoint output is closed");
    await this.writer.close();
    this.writer = undefined;
    const out = this.o.outDir;
    await withIo("move the checkpoint here", out, async () => {
      if (existsSync(out)) {
        if ((await readdir(out)).length > 0 && !this.o.force) throw new IoError("appeared during the run and is not empty", out);
        await rm(out, { recursive: true, force: true });
      }
      await rename(this.tmpDir, out);
    });
    this.done = true;
  }

  /** Removes everything written so far. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.done) return;
    const w = this.writer;
    this.writer = undefined;
    if (w) await w.abort().catch(() => undefined);
    await rm(this.tmpDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The quantized tensors of every layer, in write order (they follow the copied ones). */
function quantizedSpecs(o: ResolvedOptions): { names: Set<string>; specs: TensorSpec[] } {
  const names = new Set<string>();
  const specs: TensorSpec[] = [];
  for (let li = 0; li < o.config.numLayers; li++)
    for (const { name, k, n } of linearShapes(o.config)) {
      const prefix = `model.layers.${li}.${name}`;
      names.add(`${prefix}.weight`);
      specs.push(...linearLayout(o, prefix, k, n).specs);
    }
  return { names, specs };
}

/** Every tensor of the output: the unquantized ones copied from `ckpt` (`copied`), then the quantized ones. */
function outputSpecs(o: ResolvedOptions, ckpt: Checkpoint): { specs: TensorSpec[]; copied: string[] } {
  const q = quantizedSpecs(o);
  const rest = [...ckpt.tensors.entries()].filter(([name]) => !q.names.has(name));
  return {
    specs: [...rest.map(([name, info]) => ({ name, dtype: info.dtype, shape: info.shape.slice() })), ...q.specs],
    copied: rest.map(([name]) => name),
  };
}
