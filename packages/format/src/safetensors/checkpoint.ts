import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { FormatError } from "@marlin/core";
import { FILE_LIMITS, readJsonObjectSync } from "../files.js";
import type { TensorInfo } from "./header.js";
import { SafetensorsFile, type Tensor, type TensorSource } from "./reader.js";

export const INDEX_FILE = "model.safetensors.index.json";

/** Where a tensor of a checkpoint lies: its info plus the shard file holding it. */
export interface CheckpointTensorInfo extends TensorInfo {
  file: string;
}

/** One or more safetensors shards behind a single name -> tensor interface. */
export class Checkpoint implements TensorSource {
  readonly tensors: ReadonlyMap<string, CheckpointTensorInfo>;
  /** `__metadata__` of the first shard (shards usually carry the same). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The index file's own "metadata" object (e.g. total_size), when sharded. */
  readonly indexMetadata: Readonly<Record<string, unknown>>;
  readonly shards: readonly SafetensorsFile[];
  private readonly byName: Map<string, SafetensorsFile>;

  constructor(
    shards: SafetensorsFile[],
    byName: Map<string, SafetensorsFile>,
    indexMetadata: Record<string, unknown> = {},
  ) {
    this.shards = shards;
    this.byName = byName;
    this.indexMetadata = indexMetadata;
    this.metadata = shards[0]?.metadata ?? {};
    const tensors = new Map<string, CheckpointTensorInfo>();
    for (const [name, f] of byName) tensors.set(name, { ...f.info(name), file: f.path });
    this.tensors = tensors;
  }

  async read(name: string): Promise<Tensor> {
    const f = this.byName.get(name);
    if (!f) throw new FormatError("no such tensor in the checkpoint", { tensor: name });
    return f.read(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

async function openAll(paths: string[]): Promise<SafetensorsFile[]> {
  const files: SafetensorsFile[] = [];
  try {
    for (const p of paths) files.push(await SafetensorsFile.open(p));
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
  return files;
}

async function fromIndex(indexPath: string): Promise<Checkpoint> {
  const json = readJsonObjectSync(indexPath, FILE_LIMITS.json);
  const weightMap = json.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new FormatError("index has no weight_map object", { file: indexPath });
  }
  const dir = dirname(indexPath);
  const shardNames = new Set<string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes(sep) || shard === "..") {
      throw new FormatError(`weight_map entry ${JSON.stringify(shard)} is not a shard file name`, {
        file: indexPath,
        tensor,
      });
    }
    shardNames.add(shard);
  }
  const names = [...shardNames].sort();
  const files = await openAll(names.map((n) => join(dir, n)));
  const byFile = new Map(names.map((n, i) => [n, files[i]]));
  const byName = new Map<string, SafetensorsFile>();
  try {
    for (const [tensor, shard] of Object.entries(weightMap as Record<string, string>)) {
      const f = byFile.get(shard)!;
      if (!f.tensors.has(tensor)) {
        throw new FormatError(`listed in the index under ${shard}, which does not hold it`, { file: indexPath, tensor });
      }
      byName.set(tensor, f);
    }
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
  const meta = (json as { metadata?: unknown }).metadata;
  return new Checkpoint(files, byName, typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>) : {});
}

async function fromFiles(paths: string[]): Promise<Checkpoint> {
  const files = await openAll(paths);
  const byName = new Map<string, SafetensorsFile>();
  for (const f of files) {
    for (const name of f.tensors.keys()) {
      const prev = byName.get(name);
      if (prev) {
        await Promise.all(files.map((x) => x.close()));
        throw new FormatError(`tensor is in both ${basename(prev.path)} and ${basename(f.path)}`, {
          file: f.path,
          tensor: name,
        });
      }
      byName.set(name, f);
    }
  }
  return new Checkpoint(files, byName);
}

/**
 * Opens a checkpoint: a .safetensors file, an index .json file, or a directory holding
 * `model.safetensors.index.json`, `model.safetensors`, or (without either) its *.safetensors.
 */
export async function openCheckpoint(dirOrFile: string): Promise<Checkpoint> {
  const path = resolve(dirOrFile);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (e) {
    throw new FormatError(`cannot open: ${(e as Error).message}`, { file: path });
  }
  if (st.isFile()) return path.endsWith(".json") ? fromIndex(path) : fromFiles([path]);
  if (!st.isDirectory()) throw new FormatError("is neither a regular file nor a directory", { file: path });
  let entries: string[];
  try {
    entries = await readdir(path);
  } catch (e) {
    throw new FormatError(`cannot list: ${(e as Error).message}`, { file: path });
  }
  if (entries.includes(INDEX_FILE)) return fromIndex(join(path, INDEX_FILE));
  if (entries.includes("model.safetensors")) return fromFiles([join(path, "model.safetensors")]);
  const shards = entries.filter((e) => e.endsWith(".safetensors")).sort();
  if (shards.length === 0) throw new FormatError("no .safetensors files found", { file: path });
  return fromFiles(shards.map((s) => join(path, s)));
}
