/**
 * JSON.parse keeps the last of two equal keys in an object and drops the first without a word: a
 * safetensors header naming a tensor twice, or a tensor entry giving "dtype" twice, would load
 * whichever came last. parseJsonStrict parses, then scans the (now known valid) text once for a
 * key repeated in any object, comparing keys after unescaping ("a" and "\u0061" are one key).
 */
import { FormatError } from "@marlin/core";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The first key that appears twice in one object of valid JSON `text`, or undefined. */
export function duplicateJsonKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far (objects) or null (arrays).
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== QUOTE) {
        if (text.charCodeAt(j) === BACKSLASH) {
          escaped = true;
          j++;
        }
        j++;
      }
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

/** JSON.parse that refuses a key repeated in one object (FormatError naming `file`). */
export function parseJsonStrict(text: string, file?: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`is not valid JSON (${(e as Error).message})`, { file });
  }
  const dup = duplicateJsonKey(text);
  if (dup !== undefined) throw new FormatError(`key ${JSON.stringify(dup.slice(0, 200))} appears twice in one object`, { file });
  return v;
}
