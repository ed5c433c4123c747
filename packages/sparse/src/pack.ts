/** packSparse24 / unpackSparse24: a 2:4 QuantizedLayer to and from the layout of layout.ts, bit-exact. */
import { InvalidArgumentError } from "@marlin/core";
import type { QuantizedLayer } from "@marlin/format";
import { metaWord, NIBBLE_POS, QUAD_K, type Sparse24Layer, sparse24Groups, TILE_K, TILE_N, valueWord, ZERO_CODE } from "./layout.js";
import { checkPackable, checkPacked } from "./validate.js";

/**
 * The 2 kept positions of each chunk, as a metadata nibble idx0 | idx1 << 2 per (chunk, output):
 * the nonzero codes' positions, padded with the lowest free positions (whose codes are the zero).
 */
function chunkNibbles(q: Uint8Array, k: number, n: number): Uint8Array {
  const nib = new Uint8Array((k / 4) * n);
  for (let c = 0; c < k / 4; c++)
    for (let j = 0; j < n; j++) {
      let p0 = -1;
      let p1 = -1;
      for (let p = 0; p < 4; p++)
        if (q[(4 * c + p) * n + j] !== ZERO_CODE) {
          if (p0 < 0) p0 = p;
          else p1 = p;
        }
      if (p0 < 0) [p0, p1] = [0, 1];
      else if (p1 < 0) [p0, p1] = p0 === 0 ? [0, 1] : [0, p0];
      nib[c * n + j] = p0 | (p1 << 2);
    }
  return nib;
}

/**
 * Packs a 4-bit symmetric layer whose pruned positions hold the zero code (8, dequantizing to
 * exactly 0) into the 2:4 layout. Refuses (before allocating) anything else: NotSparse24Error names
 * the first chunk of 4 inputs with more than 2 nonzero codes.
 */
export function packSparse24(layer: QuantizedLayer): Sparse24Layer {
  checkPackable(layer);
  const { k, n, q } = layer;
  const nTiles = n / TILE_N;
  const nib = chunkNibbles(q, k, n);
  const values = new Int32Array((k * n) / 16);
  const meta = new Int32Array((k * n) / 32);
  for (let kq = 0; kq < k / QUAD_K; kq++)
    for (let nt = 0; nt < nTiles; nt++)
      for (let j = 0; j < 4; j++) {
        const chunk0 = (kq * QUAD_K + j * TILE_K) / 4; // first chunk of the tile
        for (let lane = 0; lane < 32; lane++) {
          const g = lane >> 2;
          const t = lane & 3;
          let w = 0;
          for (let e = 0; e < 8; e++) {
            const col = nt * TILE_N + g + 8 * ((e >> 1) & 1);
            const c = chunk0 + t + 4 * (e >> 2);
            const m = nib[c * n + col];
            const pos = e & 1 ? m >> 2 : m & 3;
            w |= q[(4 * c + pos) * n + col] << (4 * NIBBLE_POS[e]);
          }
          values[valueWord(kq, nt, nTiles, lane, j)] = w;
          if (t < 2) {
            let mw = 0;
            for (let c = 0; c < 4; c++) {
              const chunk = chunk0 + 4 * t + c;
              mw |= nib[chunk * n + nt * TILE_N + g] << (4 * c);
              mw |= nib[chunk * n + nt * TILE_N + g + 8] << (16 + 4 * c);
            }
            meta[metaWord(kq, nt, nTiles, g, t, j)] = mw;
          }
        }
      }
  return { k, n, bits: 4, groupSize: layer.groupSize, values, meta, scales: layer.scales.slice() };
}

/** The layer back as a QuantizedLayer [k, n] (pruned positions hold the zero code 8). */
export function unpackSparse24(p: Sparse24Layer): QuantizedLayer {
  checkPacked(p);
  const { k, n } = p;
  const nTiles = n / TILE_N;
  const q = new Uint8Array(k * n).fill(ZERO_CODE);
  for (let kq = 0; kq < k / QUAD_K; kq++)
    for (let nt = 0; nt < nTiles; nt++)
      for (let j = 0; j < 4; j++) {
        const chunk0 = (kq * QUAD_K + j * TILE_K) / 4;
        for (let lane = 0; lane < 32; lane++) {
          const g = lane >> 2;
          const t = lane & 3;
          const w = p.values[valueWord(kq, nt, nTiles, lane, j)];
          for (let e = 0; e < 8; e++) {
            const hi = (e >> 1) & 1;
            const col = nt * TILE_N + g + 8 * hi;
            const chunkIn = t + 4 * (e >> 2); // chunk inside the tile (0..7)
            const mw = p.meta[metaWord(kq, nt, nTiles, g, chunkIn >> 2, j)];
            const m = (mw >>> (16 * hi + 4 * (chunkIn & 3))) & 0xf;
            if ((m & 3) >= m >> 2) throw new InvalidArgumentError(`sparse24 layer: metadata of tile ${kq * 4 + j},${nt} lane ${lane} is not two ascending indices`);
            const pos = e & 1 ? m >> 2 : m & 3;
            q[(4 * (chunk0 + chunkIn) + pos) * n + col] = (w >>> (4 * NIBBLE_POS[e])) & 0xf;
          }
        }
      }
  const groups = sparse24Groups(k, p.groupSize);
  if (p.scales.length !== groups * n) throw new InvalidArgumentError("sparse24 layer: scales do not fit its groups");
  return { k, n, bits: 4, groupSize: p.groupSize, symmetric: true, q, scales: p.scales.slice() };
}
