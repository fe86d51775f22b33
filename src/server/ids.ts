// etcd names clusters and members by 64-bit ids; quorumlog by strings. These
// map one to the other, stably (the same names always give the same ids).

import { createHash } from 'node:crypto';

/** A stable non-zero 64-bit id for a name (the first 8 bytes of its SHA-256, top bit clear for signed clients). */
export function idFromName(...parts: readonly string[]): bigint {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  const id = h.readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
  return id === 0n ? 1n : id;
}
