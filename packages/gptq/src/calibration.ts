/**
 * Calibration samples for whole-model GPTQ: the calibration text's token stream (each line with
 * BOS from the tokenizer, EOS after it, like the perplexity tool) cut into `nsamples` windows of
 * `seqlen` tokens at seeded random offsets, so a run can be replayed from its seed.
 */
import { InvalidArgumentError, type Rng } from "@marlin/core";
import { FILE_LIMITS, readTextFileSync } from "@marlin/format";

/**
 * The non-empty lines of a calibration text file. Read as a regular UTF-8 file of at most
 * FILE_LIMITS.text bytes (FormatError naming it otherwise: a FIFO is refused, not waited on).
 */
export function readCalibrationLines(file: string): string[] {
  return readTextFileSync(file, FILE_LIMITS.text)
    .split(/\r?\n/)
    .filter((l) => l.length > 0);
}

/** Concatenates tokenized lines, appending `eos` after each line when given. */
export function tokenStream(lines: ArrayLike<number>[], eos?: number): Int32Array {
  let total = 0;
  for (const l of lines) total += l.length + (eos === undefined ? 0 : 1);
  const out = new Int32Array(total);
  let at = 0;
  for (const l of lines) {
    for (let i = 0; i < l.length; i++) out[at++] = l[i];
    if (eos !== undefined) out[at++] = eos;
  }
  return out;
}

/**
 * `nsamples` windows of exactly `seqlen` tokens, each starting at a uniform random offset of the
 * stream (windows may overlap when the text is short). Refuses a stream shorter than one window.
 */
export function sampleCalibration(stream: ArrayLike<number>, nsamples: number, seqlen: number, rng: Rng): Int32Array[] {
  if (!Number.isInteger(nsamples) || nsamples <= 0) throw new InvalidArgumentError(`nsamples must be a positive integer, got ${nsamples}`);
  if (!Number.isInteger(seqlen) || seqlen < 2) throw new InvalidArgumentError(`seqlen must be an integer >= 2, got ${seqlen}`);
  if (stream.length < seqlen) {
    throw new InvalidArgumentError(`the calibration text has ${stream.length} tokens, fewer than one window of ${seqlen}; use a longer file or a smaller seqlen`);
  }
  const out: Int32Array[] = [];
  for (let s = 0; s < nsamples; s++) {
    const at = rng.int(0, stream.length - seqlen + 1);
    const w = new Int32Array(seqlen);
    for (let i = 0; i < seqlen; i++) w[i] = stream[at + i];
    out.push(w);
  }
  return out;
}
