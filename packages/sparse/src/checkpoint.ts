/**
 * The checkpoint form of 2:4 layers: per linear layer `<prefix>.B_24` (int32 [k/128, 8n], codes),
 * `<prefix>.meta_24` (int32 [k/128, 4n], indices) and `<prefix>.s_24` (fp16 [groups, n], scales),
 * and in config.json a `quantization_config` naming `"sparsity": "2:4"`. A layer is recognised by
 * its tensors, never by the config alone: a file that says 2:4 but holds dense Marlin tensors
 * (`B`, `s`) loads as dense.
 */
import { FormatError } from "@marlin/core";
import { asF16, asInt32, type NamedTensor, type Tensor, type TensorSource } from "@marlin/format";
import { QUAD_K, type Sparse24Layer, sparse24Shapes } from "./layout.js";
import { checkPacked, firstBadMetaWord } from "./validate.js";

export const SPARSE24_TENSORS = { values: "B_24", meta: "meta_24", scales: "s_24" } as const;

/** The tensors a writer puts in the file for one layer: name -> tensor. */
export function sparse24Tensors(prefix: string, packed: Sparse24Layer): Record<string, NamedTensor> {
  checkPacked(packed);
  const s = sparse24Shapes(packed.k, packed.n, packed.groupSize);
  return {
    [`${prefix}.${SPARSE24_TENSORS.values}`]: { dtype: "int32", shape: s.values, data: packed.values },
    [`${prefix}.${SPARSE24_TENSORS.meta}`]: { dtype: "int32", shape: s.meta, data: packed.meta },
    [`${prefix}.${SPARSE24_TENSORS.scales}`]: { dtype: "float16", shape: s.scales, data: packed.scales },
  };
}

/** The `quantization_config` of a 2:4 checkpoint (config.json), as a writer should store it. */
export function sparse24QuantizationConfig(groupSize: number): Record<string, unknown> {
  return { quant_method: "marlin", checkpoint_format: "marlin", bits: 4, group_size: groupSize, sym: true, desc_act: false, sparsity: "2:4" };
}

/** True when the source holds a 2:4 layer under `prefix` (its codes and metadata tensors). */
export function hasSparse24Layer(src: Pick<TensorSource, "tensors">, prefix: string): boolean {
  return src.tensors.has(`${prefix}.${SPARSE24_TENSORS.values}`) && src.tensors.has(`${prefix}.${SPARSE24_TENSORS.meta}`);
}

function shape2(t: Tensor, name: string): [number, number] {
  if (t.shape.length !== 2) throw new FormatError(`shape [${t.shape}] must be 2-D`, { tensor: name });
  return [t.shape[0], t.shape[1]];
}

/** Reads a 2:4 layer `<prefix>.*` (shapes checked against each other; k and n come from them). */
export async function loadSparse24Layer(src: TensorSource, prefix: string): Promise<Sparse24Layer> {
  const name = (key: keyof typeof SPARSE24_TENSORS) => `${prefix}.${SPARSE24_TENSORS[key]}`;
  for (const key of ["values", "meta", "scales"] as const)
    if (!src.tensors.has(name(key))) throw new FormatError(`missing tensor of 2:4 layer ${prefix}`, { tensor: name(key) });
  const [tv, tm, ts] = await Promise.all([src.read(name("values")), src.read(name("meta")), src.read(name("scales"))]);
  const [quads, n8] = shape2(tv, name("values"));
  const [groups, n] = shape2(ts, name("scales"));
  const k = quads * QUAD_K;
  if (n8 !== 8 * n) throw new FormatError(`shape [${tv.shape}] does not fit scales [${ts.shape}] (expected [k/128, 8n])`, { tensor: name("values") });
  const mshape = shape2(tm, name("meta"));
  if (mshape[0] !== quads || mshape[1] !== 4 * n) throw new FormatError(`shape [${tm.shape}], expected [${quads}, ${4 * n}]`, { tensor: name("meta") });
  let groupSize: number;
  if (groups === 1) groupSize = -1;
  else if (groups * QUAD_K === k) groupSize = QUAD_K;
  else throw new FormatError(`${groups} scale groups fit neither per-channel nor group 128 for k = ${k}`, { tensor: name("scales") });
  const layer: Sparse24Layer = {
    k,
    n,
    bits: 4,
    groupSize,
    values: asInt32(tv, name("values"), (k * n) / 16),
    meta: asInt32(tm, name("meta"), (k * n) / 32),
    scales: asF16(ts, name("scales"), groups * n),
  };
  try {
    checkPacked(layer, prefix);
  } catch (e) {
    throw new FormatError((e as Error).message, { tensor: prefix });
  }
  const bad = firstBadMetaWord(layer.meta);
  if (bad >= 0) throw new FormatError(`word ${bad} holds a chunk whose two indices are not ascending (not a 2:4 metadata word)`, { tensor: name("meta") });
  return layer;
}
