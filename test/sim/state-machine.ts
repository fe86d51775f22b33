// The simulator's state machine: it folds every applied entry into a running
// digest, so two nodes that applied the same entries in the same order hold
// the same digest. Its snapshot is that digest plus the count, a few bytes,
// padded so that snapshot transfer takes several chunks.

import type { Entry } from '../../src/protocol/entry.js';

/** FNV-1a over bytes, continuing from `h`. */
export function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const textEncoder = new TextEncoder();

/** A digest of one entry's identity and payload (a config entry's payload is its configuration). */
export function entryDigest(e: Entry): number {
  let h = e.type === 'config'
    ? fnv1a(textEncoder.encode(`${e.config.voters.join(',')}|${e.config.observers.join(',')}`))
    : fnv1a(e.data);
  h = Math.imul(h ^ e.index, 0x01000193) >>> 0;
  h = Math.imul(h ^ e.term, 0x01000193) >>> 0;
  return Math.imul(h ^ (e.type === 'noop' ? 1 : e.type === 'config' ? 3 : 2), 0x01000193) >>> 0;
}

export class DigestStateMachine {
  applied = 0;
  digest = 0;

  apply(e: Entry): void {
    this.applied = e.index;
    this.digest = Math.imul(this.digest ^ entryDigest(e), 0x01000193) >>> 0;
  }

  /** Serializes to `padBytes` + 12 bytes. */
  snapshot(padBytes: number): Uint8Array {
    const out = new Uint8Array(12 + padBytes);
    const view = new DataView(out.buffer);
    view.setUint32(0, 0x51554f52);
    view.setUint32(4, this.applied);
    view.setUint32(8, this.digest);
    for (let i = 12; i < out.length; i++) out[i] = (this.digest + i) & 0xff;
    return out;
  }

  static restore(data: Uint8Array): DigestStateMachine {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.byteLength < 12 || view.getUint32(0) !== 0x51554f52) throw new Error('bad snapshot bytes');
    const sm = new DigestStateMachine();
    sm.applied = view.getUint32(4);
    sm.digest = view.getUint32(8);
    return sm;
  }
}
