// For stream-reader tests: a byte stream cut into chunks at arbitrary
// positions, as a socket may deliver it.

/**
 * Cuts `bytes` at `positions` (each taken modulo length + 1, deduplicated,
 * sorted): the chunks, empty ones included, concatenate back to `bytes`.
 */
export function cutAt<T extends Uint8Array>(bytes: T, positions: readonly number[]): T[] {
  const points = [...new Set(positions.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: T[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(from, p) as T);
    from = p;
  }
  return out;
}
