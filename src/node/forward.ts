// Requests a follower or observer forwards to the leader over the peer
// transport (an `app` frame on FORWARD_CHANNEL), and the leader's answers.
//
// A forwarded write is a whole batch (one entry's payload) and the term in
// which the follower believes its leader leads: the leader proposes it as one
// entry only in that very term (else it refuses), and answers with the
// entry's (index, term). The follower then learns each command's result by
// applying that entry itself — the state machine is deterministic, so its
// result is the leader's. Because a batch forwarded in term T can only ever
// be in an entry of term T, the follower can also tell, once an entry of a
// later term has applied, whether a batch whose answer never came can still
// apply (src/node/requests.ts).
// A forwarded read asks the leader for a ReadIndex; the follower serves the
// read locally once it has applied up to the index the leader answers.
// This file is the wire format; src/node/forwarding.ts sends and handles it.


/** The transport channel of forwarding frames (numbered in src/node/channels.ts). */
export { FORWARD_CHANNEL } from './channels.js';

/** Why the leader refused a forwarded request. */
export type ForwardRefusal = 'notLeader' | 'backpressure' | 'transfer';
const REFUSALS: readonly ForwardRefusal[] = ['notLeader', 'backpressure', 'transfer'];

export type ForwardMessage =
  /** From a node of an earlier version: proposed in whatever term the leader is in. */
  | { readonly type: 'propose'; readonly reqId: number; readonly batch: Uint8Array }
  /** Propose `batch` only if the leader still leads in `term`. */
  | { readonly type: 'proposeInTerm'; readonly reqId: number; readonly term: number; readonly batch: Uint8Array }
  | { readonly type: 'proposed'; readonly reqId: number; readonly index: number; readonly term: number }
  | { readonly type: 'read'; readonly reqId: number }
  | { readonly type: 'readIndex'; readonly reqId: number; readonly index: number }
  | { readonly type: 'refused'; readonly reqId: number; readonly reason: ForwardRefusal };

const TAGS = ['propose', 'proposed', 'read', 'readIndex', 'refused', 'proposeInTerm'] as const;

/** Encodes a forwarding message: u8 tag, f64 reqId, then the tag's fields. */
export function encodeForward(m: ForwardMessage): Uint8Array {
  const extra = m.type === 'propose' ? m.batch.byteLength : m.type === 'proposeInTerm' ? 8 + m.batch.byteLength
    : m.type === 'proposed' ? 16 : m.type === 'readIndex' ? 8 : m.type === 'refused' ? 1 : 0;
  const out = new Uint8Array(9 + extra);
  const v = new DataView(out.buffer);
  v.setUint8(0, TAGS.indexOf(m.type));
  v.setFloat64(1, m.reqId, true);
  switch (m.type) {
    case 'propose': out.set(m.batch, 9); break;
    case 'proposeInTerm': v.setFloat64(9, m.term, true); out.set(m.batch, 17); break;
    case 'proposed': v.setFloat64(9, m.index, true); v.setFloat64(17, m.term, true); break;
    case 'readIndex': v.setFloat64(9, m.index, true); break;
    case 'refused': v.setUint8(9, REFUSALS.indexOf(m.reason)); break;
    case 'read': break;
  }
  return out;
}

/** Decodes a forwarding message; throws ForwardFormatError on anything malformed. */
export function decodeForward(b: Uint8Array): ForwardMessage {
  if (b.byteLength < 9) throw new ForwardFormatError(`frame of ${b.byteLength} bytes is too short`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tag: (typeof TAGS)[number] | undefined = TAGS[v.getUint8(0)];
  const reqId = count(v, 1, 'reqId');
  const expect = (n: number): void => {
    if (b.byteLength !== 9 + n) throw new ForwardFormatError(`${String(tag)} frame has ${b.byteLength} bytes, expected ${9 + n}`);
  };
  switch (tag) {
    case 'propose': return { type: 'propose', reqId, batch: b.slice(9) };
    case 'proposeInTerm': {
      if (b.byteLength < 17) throw new ForwardFormatError(`proposeInTerm frame of ${b.byteLength} bytes is too short`);
      return { type: 'proposeInTerm', reqId, term: count(v, 9, 'term'), batch: b.slice(17) };
    }
    case 'proposed': expect(16); return { type: 'proposed', reqId, index: count(v, 9, 'index'), term: count(v, 17, 'term') };
    case 'read': expect(0); return { type: 'read', reqId };
    case 'readIndex': expect(8); return { type: 'readIndex', reqId, index: count(v, 9, 'index') };
    case 'refused': {
      expect(1);
      const reason = REFUSALS[v.getUint8(9)];
      if (reason === undefined) throw new ForwardFormatError(`unknown refusal ${v.getUint8(9)}`);
      return { type: 'refused', reqId, reason };
    }
    case undefined: break;
  }
  throw new ForwardFormatError(`unknown forwarding tag ${v.getUint8(0)}`);
}

function count(v: DataView, at: number, what: string): number {
  const n = v.getFloat64(at, true);
  if (!Number.isSafeInteger(n) || n < 0) throw new ForwardFormatError(`${what} ${n} is not a non-negative integer`);
  return n;
}

/** A forwarding frame that does not parse. */
export class ForwardFormatError extends Error {
  override readonly name = 'ForwardFormatError';
}
