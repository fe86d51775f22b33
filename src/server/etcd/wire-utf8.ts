// Strings that arrive as bytes that are not UTF-8. protobufjs decodes a
// proto3 `string` field with Node's lenient decoder, which replaces every
// ill-formed sequence with U+FFFD: a user or role name sent as invalid UTF-8
// (a lone surrogate, a stray 0xFF) would silently become another name, and
// two different byte strings the same one. So, for the services where names
// matter (etcd's Auth), the request's raw bytes are checked as they are
// decoded, and a request with such a string field is marked, for its handler
// to refuse as malformed (a decoder that threw would make grpc-js answer
// INTERNAL).

import { isUtf8 } from 'node:buffer';
import type * as grpc from '@grpc/grpc-js';

/** Set on a decoded request when one of its string fields was not well-formed UTF-8: that field's name. */
export const MALFORMED_UTF8: unique symbol = Symbol('malformedUtf8');

/** What a request decoded by a {@link checkUtf8Strings} service may carry. */
export interface MaybeMalformedUtf8 {
  [MALFORMED_UTF8]?: string;
}

interface FieldDescriptor {
  readonly name?: string;
  readonly number?: number;
  readonly type?: string;
}

/**
 * The first field among `stringFields` (field number → name) at the top level
 * of the protobuf message `buf` whose bytes are not well-formed UTF-8, or
 * null. A message that does not parse yields null (its decoder judges it).
 */
export function firstMalformedUtf8Field(buf: Uint8Array, stringFields: ReadonlyMap<number, string>): string | null {
  let pos = 0;
  const varint = (): number | null => {
    let v = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (pos >= buf.byteLength) return null;
      const b = buf[pos++] as number;
      if (shift < 49) v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    return null;
  };
  while (pos < buf.byteLength) {
    const tag = varint();
    if (tag === null) return null;
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0:
        if (varint() === null) return null;
        break;
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case 2: {
        const len = varint();
        if (len === null || pos + len > buf.byteLength) return null;
        const name = stringFields.get(field);
        if (name !== undefined && !isUtf8(buf.subarray(pos, pos + len))) return name;
        pos += len;
        break;
      }
      default:
        return null; // groups, or no wire type at all
    }
  }
  return null;
}

/**
 * `service` with each method's request decoder marking requests whose
 * top-level string fields are not well-formed UTF-8 ({@link MALFORMED_UTF8});
 * the string fields are read from the method's message descriptor.
 */
export function checkUtf8Strings(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [method, def] of Object.entries(service)) {
    const fields = ((def as { requestType?: { type?: { field?: FieldDescriptor[] } } }).requestType?.type?.field ?? [])
      .filter((f) => f.type === 'TYPE_STRING' && typeof f.number === 'number')
      .map((f) => [f.number as number, f.name ?? String(f.number)] as const);
    if (fields.length === 0) {
      out[method] = def;
      continue;
    }
    const strings = new Map(fields);
    const decode = def.requestDeserialize;
    out[method] = {
      ...def,
      requestDeserialize: (buf: Buffer) => {
        const req = decode(buf);
        const bad = firstMalformedUtf8Field(buf, strings);
        if (bad !== null && typeof req === 'object' && req !== null) (req as MaybeMalformedUtf8)[MALFORMED_UTF8] = bad;
        return req;
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
