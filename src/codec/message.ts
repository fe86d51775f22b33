// Binary encoding of every Raft message (src/protocol/messages.ts).
//
// Layout: u8 type tag | from | to | term | dirId | the type's fields in a fixed order.
//   - dirId: the sender's directory id (docs/LOST-DISKS.md) as a varint in
//     [1, 2^48), or 0 when the message carries none;
//   - integers (indexes, terms, offsets, counters): canonical unsigned LEB128
//     varints of non-negative safe integers (< 2^53), at most 8 bytes;
//   - booleans: one byte, exactly 0 or 1;
//   - node ids: u8 length (1..255) + UTF-8; an optional id uses length 0 for null;
//   - byte strings: varint length + bytes;
//   - entries: varint count, then (when count > 0) the first index, then per
//     entry: term, type byte (0 data, 1 noop, 2 config), byte string (for a
//     config entry: the configuration, configuration.ts). Indexes are
//     consecutive, so only the first is sent;
//   - snapshot ids: index, term, u8 0/1, then the configuration when 1.
// The encoding is canonical: a decoded message re-encodes to the same bytes.
// Besides the format, the decoder checks what the core relies on without
// checking (entries consecutive with non-decreasing terms >= 1, starting
// right after prevIndex / at fetchOffset), so a malicious or buggy peer
// cannot trip an assertion in the core.

import { DIR_ID_LIMIT, isDirId, type Entry, type SnapshotMeta } from '../protocol/entry.js';
import type { NodeId } from '../protocol/ids.js';
import type { FetchResult, Message, MessageType } from '../protocol/messages.js';
import { assert, assertNever } from '../util/assert.js';
import { ByteReader, ByteWriter, checkUint, shortStringUtf8, varintBytes } from './bytes.js';
import { configurationSize, readConfiguration, writeConfiguration } from './configuration.js';
import { CodecError } from './errors.js';

type FieldKind = 'uint' | 'bool' | 'blob' | 'entries' | 'snapshot' | 'result';
type Envelope = 'type' | 'from' | 'to' | 'term' | 'dirId';
type Fields<M> = readonly (readonly [Exclude<keyof M, Envelope> & string, FieldKind])[];

/** Each message type's fields, in wire order; names are checked against the message types. */
const FIELDS: { readonly [T in MessageType]: Fields<Extract<Message, { type: T }>> } = {
  vote: [['preVote', 'bool'], ['lastIndex', 'uint'], ['lastTerm', 'uint'], ['transfer', 'bool']],
  voteResponse: [['preVote', 'bool'], ['granted', 'bool']],
  append: [['prevIndex', 'uint'], ['prevTerm', 'uint'], ['commit', 'uint'], ['entries', 'entries']],
  appendResponse: [['success', 'bool'], ['matchIndex', 'uint'], ['rejectedIndex', 'uint'], ['hintIndex', 'uint'], ['hintTerm', 'uint']],
  heartbeat: [['commit', 'uint'], ['readSeq', 'uint']],
  heartbeatResponse: [['readSeq', 'uint']],
  installSnapshot: [['snapshot', 'snapshot'], ['offset', 'uint'], ['done', 'bool'], ['data', 'blob']],
  installSnapshotResponse: [['snapshot', 'snapshot'], ['nextOffset', 'uint'], ['installed', 'bool']],
  timeoutNow: [],
  beginQuorumEpoch: [],
  fetch: [['fetchOffset', 'uint'], ['lastFetchedTerm', 'uint'], ['maxWaitTicks', 'uint'], ['maxBytes', 'uint'], ['commit', 'uint'], ['readSeq', 'uint']],
  fetchResponse: [['fetchOffset', 'uint'], ['lastFetchedTerm', 'uint'], ['readSeq', 'uint'], ['result', 'result']],
  fetchSnapshot: [['snapshot', 'snapshot'], ['position', 'uint'], ['maxBytes', 'uint']],
  fetchSnapshotResponse: [['snapshot', 'snapshot'], ['position', 'uint'], ['done', 'bool'], ['missing', 'bool'], ['data', 'blob']],
};

/** Wire tags, 1-based; a tag is never reused for another type. */
const TAGS: { readonly [T in MessageType]: number } = {
  vote: 1, voteResponse: 2, append: 3, appendResponse: 4, heartbeat: 5, heartbeatResponse: 6,
  installSnapshot: 7, installSnapshotResponse: 8, timeoutNow: 9, beginQuorumEpoch: 10,
  fetch: 11, fetchResponse: 12, fetchSnapshot: 13, fetchSnapshotResponse: 14,
};
const TYPE_BY_TAG: readonly (MessageType | undefined)[] = (() => {
  const byTag: (MessageType | undefined)[] = [];
  for (const [type, tag] of Object.entries(TAGS)) byTag[tag] = type as MessageType;
  return byTag;
})();

const RESULT_TAGS = { entries: 0, diverging: 1, snapshot: 2, notLeader: 3 } as const;
const ENTRY_TYPE_DATA = 0;
const ENTRY_TYPE_NOOP = 1;
const ENTRY_TYPE_CONFIG = 2;
/** The fewest bytes an encoded entry takes (term, type, empty data): bounds a count before allocating. */
const MIN_ENTRY_BYTES = 3;

/** Every message type, in tag order (for tests and tooling). */
export const MESSAGE_TYPES: readonly MessageType[] = TYPE_BY_TAG.filter((t): t is MessageType => t !== undefined);

// ---------------------------------------------------------------- encode ---

/**
 * Encodes a message. The buffer is sized exactly first, so entry and snapshot
 * data are copied once. Throws CodecError when a value cannot be carried (a
 * negative or unsafe integer, an empty, over-long or ill-formed node id,
 * entries that are not consecutive) — always a bug in the sender.
 */
export function encodeMessage(m: Message): Uint8Array {
  const fields = (FIELDS as Record<string, Fields<Record<string, unknown>> | undefined>)[m.type];
  if (fields === undefined) throw new CodecError(`unknown message type ${JSON.stringify(m.type)}`, null);
  const rec = m as unknown as Record<string, unknown>;
  const from = shortStringUtf8('from', m.from);
  const to = shortStringUtf8('to', m.to);
  checkUint('term', m.term);
  if (m.dirId !== undefined && !isDirId(m.dirId)) throw new CodecError(`dirId: ${m.dirId} is not an integer in [1, 2^48)`, null);
  const dirId = m.dirId ?? 0;
  let size = 1 + 1 + from.byteLength + 1 + to.byteLength + varintBytes(m.term) + varintBytes(dirId);
  let notLeaderHint: Uint8Array | null = null;
  for (const [name, kind] of fields) {
    const v = rec[name];
    switch (kind) {
      case 'uint':
        checkUint(name, v as number);
        size += varintBytes(v as number);
        break;
      case 'bool':
        if (typeof v !== 'boolean') throw new CodecError(`${name}: not a boolean`, null);
        size += 1;
        break;
      case 'blob':
        size += blobSize(name, v);
        break;
      case 'entries':
        size += entriesSize(name, v as readonly Entry[]);
        break;
      case 'snapshot':
        size += snapshotSize(name, v as SnapshotMeta);
        break;
      case 'result': {
        const r = v as FetchResult;
        size += 1;
        switch (r.kind) {
          case 'entries': size += entriesSize('result.entries', r.entries) + uintSize('result.commit', r.commit); break;
          case 'diverging': size += uintSize('result.divergingTerm', r.divergingTerm) + uintSize('result.endOffset', r.endOffset); break;
          case 'snapshot': size += snapshotSize('result.snapshot', r.snapshot); break;
          case 'notLeader':
            notLeaderHint = r.leader === null ? null : shortStringUtf8('result.leader', r.leader);
            size += 1 + (notLeaderHint?.byteLength ?? 0);
            break;
          default: throw new CodecError(`result.kind: unknown ${JSON.stringify((r as { kind: unknown }).kind)}`, null);
        }
        break;
      }
      default: assertNever(kind, 'field kind');
    }
  }
  const startProblem = entriesStartProblem(m);
  if (startProblem !== null) throw new CodecError(startProblem, null);

  const w = new ByteWriter(size);
  w.u8(TAGS[m.type]);
  w.shortString(from);
  w.shortString(to);
  w.uint(m.term);
  w.uint(dirId);
  for (const [name, kind] of fields) {
    const v = rec[name];
    switch (kind) {
      case 'uint': w.uint(v as number); break;
      case 'bool': w.bool(v as boolean); break;
      case 'blob': w.blob(v as Uint8Array); break;
      case 'entries': writeEntries(w, v as readonly Entry[]); break;
      case 'snapshot': writeSnapshot(w, v as SnapshotMeta); break;
      case 'result': {
        const r = v as FetchResult;
        w.u8(RESULT_TAGS[r.kind]);
        switch (r.kind) {
          case 'entries': writeEntries(w, r.entries); w.uint(r.commit); break;
          case 'diverging': w.uint(r.divergingTerm); w.uint(r.endOffset); break;
          case 'snapshot': writeSnapshot(w, r.snapshot); break;
          case 'notLeader': w.shortString(notLeaderHint); break;
          default: assertNever(r, 'fetch result');
        }
        break;
      }
      default: assertNever(kind, 'field kind');
    }
  }
  assert(w.pos === size, () => `encoded ${w.pos} bytes of a ${m.type} sized at ${size}`);
  return w.bytes;
}

function uintSize(field: string, v: number): number {
  checkUint(field, v);
  return varintBytes(v);
}

function blobSize(field: string, v: unknown): number {
  if (!(v instanceof Uint8Array)) throw new CodecError(`${field}: not a Uint8Array`, null);
  return varintBytes(v.byteLength) + v.byteLength;
}

function snapshotSize(field: string, s: SnapshotMeta): number {
  const config = s.config === undefined ? 0 : configurationSize(s.config);
  return uintSize(`${field}.index`, s.index) + uintSize(`${field}.term`, s.term) + 1 + config;
}

function entriesSize(field: string, entries: readonly Entry[]): number {
  if (!Array.isArray(entries)) throw new CodecError(`${field}: not an array`, null);
  let size = varintBytes(entries.length);
  const first = entries[0];
  if (first === undefined) return size;
  size += uintSize(`${field}[0].index`, first.index);
  if (first.index < 1) throw new CodecError(`${field}[0].index: ${first.index}, indexes start at 1`, null);
  let prevTerm = 1;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    const problem = entryProblem(e.index, e.term, first.index + i, prevTerm);
    if (problem !== null) throw new CodecError(`${field}[${i}]: ${problem}`, null);
    prevTerm = e.term;
    switch (e.type) {
      case 'data':
      case 'noop':
        size += varintBytes(e.term) + 1 + blobSize(`${field}[${i}].data`, e.data);
        break;
      case 'config': {
        if (!(e.data instanceof Uint8Array) || e.data.byteLength !== 0) throw new CodecError(`${field}[${i}].data: a config entry carries no data`, null);
        const n = configurationSize(e.config);
        size += varintBytes(e.term) + 1 + varintBytes(n) + n;
        break;
      }
      default: throw new CodecError(`${field}[${i}].type: unknown ${JSON.stringify((e as { type: unknown }).type)}`, null);
    }
  }
  return size;
}

function writeEntries(w: ByteWriter, entries: readonly Entry[]): void {
  w.uint(entries.length);
  const first = entries[0];
  if (first === undefined) return;
  w.uint(first.index);
  for (const e of entries) {
    w.uint(e.term);
    switch (e.type) {
      case 'data': w.u8(ENTRY_TYPE_DATA); w.blob(e.data); break;
      case 'noop': w.u8(ENTRY_TYPE_NOOP); w.blob(e.data); break;
      case 'config':
        w.u8(ENTRY_TYPE_CONFIG);
        w.uint(configurationSize(e.config));
        writeConfiguration(w, e.config);
        break;
      default: assertNever(e, 'entry');
    }
  }
}

function writeSnapshot(w: ByteWriter, s: SnapshotMeta): void {
  w.uint(s.index);
  w.uint(s.term);
  w.bool(s.config !== undefined);
  if (s.config !== undefined) writeConfiguration(w, s.config);
}

/** Why an entry cannot follow its predecessor in a message, or null. */
function entryProblem(index: number, term: number, expectedIndex: number, prevTerm: number): string | null {
  if (!Number.isSafeInteger(index) || index !== expectedIndex) return `index ${index} should be ${expectedIndex} (indexes are consecutive and >= 1)`;
  if (!Number.isSafeInteger(term) || term < prevTerm) return `term ${term} is below ${prevTerm} (terms are >= 1 and never decrease)`;
  return null;
}

/** Why a message's entries do not start where the message says they do, or null. */
function entriesStartProblem(m: Message): string | null {
  let entries: readonly Entry[];
  let expected: number;
  if (m.type === 'append') {
    entries = m.entries;
    expected = m.prevIndex + 1;
  } else if (m.type === 'fetchResponse' && m.result.kind === 'entries') {
    entries = m.result.entries;
    expected = m.fetchOffset;
  } else {
    return null;
  }
  const first = entries[0];
  if (first === undefined || first.index === expected) return null;
  return `${m.type}: entries start at ${first.index}, not at ${expected}`;
}

// ---------------------------------------------------------------- decode ---

/**
 * Decodes one message occupying all of `bytes`. Entry and snapshot data are
 * copied out, so the result does not pin `bytes`. Throws CodecError (naming
 * the field and byte offset) on anything malformed: unknown type tag,
 * truncation, trailing bytes, an integer beyond 2^53 - 1 or not minimally
 * encoded, a directory id of 2^48 or more, a boolean byte other than 0/1, a node id that is empty or invalid
 * UTF-8, an unknown entry type or fetch result kind, or entries that are not
 * consecutive from where the message says they start.
 */
export function decodeMessage(bytes: Uint8Array): Message {
  const r: ByteReader = new ByteReader(bytes); // annotated: r.fail() then narrows
  const tag = r.u8('type tag');
  const type = TYPE_BY_TAG[tag];
  if (type === undefined) r.fail('type tag', `unknown tag ${tag}`, 0);
  const m: Record<string, unknown> = {
    type,
    from: r.shortString('from', false) as NodeId,
    to: r.shortString('to', false) as NodeId,
    term: r.uint('term'),
  };
  const dirIdAt = r.pos;
  const dirId = r.uint('dirId');
  if (dirId >= DIR_ID_LIMIT) r.fail('dirId', `${dirId} is not below 2^48`, dirIdAt);
  if (dirId !== 0) m['dirId'] = dirId;
  let entriesAt = 0;
  for (const [name, kind] of FIELDS[type] as Fields<Record<string, unknown>>) {
    switch (kind) {
      case 'uint': m[name] = r.uint(name); break;
      case 'bool': m[name] = r.bool(name); break;
      case 'blob': m[name] = r.blob(name); break;
      case 'entries': entriesAt = r.pos; m[name] = readEntries(r, name); break;
      case 'snapshot': m[name] = readSnapshot(r, name); break;
      case 'result': entriesAt = r.pos; m[name] = readResult(r); break;
      default: assertNever(kind, 'field kind');
    }
  }
  r.end(type);
  const message = m as unknown as Message;
  const startProblem = entriesStartProblem(message);
  if (startProblem !== null) throw new CodecError(startProblem, entriesAt);
  return message;
}

function readEntries(r: ByteReader, field: string): Entry[] {
  const at = r.pos;
  const count = r.uint(`${field} count`);
  if (count === 0) return [];
  if (count > r.remaining() / MIN_ENTRY_BYTES) r.fail(`${field} count`, `${count} entries cannot fit in ${r.remaining()} bytes`, at);
  const firstIndex = r.uint(`${field} first index`);
  if (firstIndex < 1 || firstIndex + count - 1 > Number.MAX_SAFE_INTEGER) {
    r.fail(`${field} first index`, `${firstIndex} with ${count} entries is outside [1, 2^53)`, at);
  }
  const entries = new Array<Entry>(count);
  let prevTerm = 1;
  for (let i = 0; i < count; i++) {
    const termAt = r.pos;
    const term = r.uint(`${field}[${i}].term`);
    if (term < prevTerm) r.fail(`${field}[${i}].term`, `term ${term} is below ${prevTerm} (terms are >= 1 and never decrease)`, termAt);
    prevTerm = term;
    const typeAt = r.pos;
    const t = r.u8(`${field}[${i}].type`);
    if (t === ENTRY_TYPE_CONFIG) {
      const lengthAt = r.pos;
      const length = r.uint(`${field}[${i}].config length`);
      const start = r.pos;
      if (length > r.remaining()) r.fail(`${field}[${i}].config`, `length ${length} exceeds the ${r.remaining()} bytes left`, lengthAt);
      const config = readConfiguration(r, `${field}[${i}].config`);
      if (r.pos !== start + length) r.fail(`${field}[${i}].config`, `${length} bytes announced, ${r.pos - start} read`, lengthAt);
      entries[i] = { index: firstIndex + i, term, type: 'config', config, data: new Uint8Array(0) };
      continue;
    }
    if (t !== ENTRY_TYPE_DATA && t !== ENTRY_TYPE_NOOP) r.fail(`${field}[${i}].type`, `unknown entry type ${t}`, typeAt);
    entries[i] = { index: firstIndex + i, term, type: t === ENTRY_TYPE_DATA ? 'data' : 'noop', data: r.blob(`${field}[${i}].data`) };
  }
  return entries;
}

function readSnapshot(r: ByteReader, field: string): SnapshotMeta {
  const index = r.uint(`${field}.index`);
  const term = r.uint(`${field}.term`);
  if (!r.bool(`${field}.hasConfig`)) return { index, term };
  return { index, term, config: readConfiguration(r, `${field}.config`) };
}

function readResult(r: ByteReader): FetchResult {
  const at = r.pos;
  const kind = r.u8('result kind');
  switch (kind) {
    case RESULT_TAGS.entries: return { kind: 'entries', entries: readEntries(r, 'result.entries'), commit: r.uint('result.commit') };
    case RESULT_TAGS.diverging: return { kind: 'diverging', divergingTerm: r.uint('result.divergingTerm'), endOffset: r.uint('result.endOffset') };
    case RESULT_TAGS.snapshot: return { kind: 'snapshot', snapshot: readSnapshot(r, 'result.snapshot') };
    case RESULT_TAGS.notLeader: return { kind: 'notLeader', leader: r.shortString('result.leader', true) as NodeId | null };
    default: return r.fail('result kind', `unknown kind ${kind}`, at);
  }
}
