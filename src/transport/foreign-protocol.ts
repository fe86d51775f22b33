// Recognises a client that connected to the peer port by mistake: a gRPC or
// etcd client (its HTTP/2 preface, "PRI * HTTP/2.0…"), a browser or curl
// (an HTTP/1 request line), a TLS client (a ClientHello record). Read as our
// frame header, each of these is a length far above any hello frame's (a
// hello is at most 775 bytes long; see handshake.ts), so it can never be
// taken for a peer; today it would be logged as "malformed frame … length
// 541676112". The transport logs what it is instead, with where clients go.

/** A protocol that is not ours, by its first bytes. */
export type ForeignProtocol = 'http2' | 'http1' | 'tls';

import { assertNever } from '../util/assert.js';

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

/**
 * How many first bytes decide. A hello frame's u32 little-endian length is
 * at most 775, so its bytes 2 and 3 are zero, and every signature below has
 * a non-zero byte among its first 4 (TLS: the record's version, 0x03, at
 * byte 1 makes a length of at least 0x0316 = 790).
 */
export const FOREIGN_SIGNATURE_BYTES = 4;

/** Signatures by their first bytes (at most FOREIGN_SIGNATURE_BYTES). */
const SIGNATURES: readonly (readonly [ForeignProtocol, readonly number[]])[] = [
  ['http2', ascii('PRI ')],
  ...['GET ', 'POST', 'PUT ', 'HEAD', 'DELE', 'OPTI', 'PATC', 'CONN'].map((m) => ['http1', ascii(m)] as const),
  ['tls', [0x16, 0x03]], // handshake record, TLS major version 3
];

/** The foreign protocol `head` (the first bytes of a connection, before any handshake) starts with, or null. */
export function foreignProtocol(head: Uint8Array): ForeignProtocol | null {
  for (const [kind, sig] of SIGNATURES) {
    if (head.length >= sig.length && sig.every((b, i) => head[i] === b)) return kind;
  }
  return null;
}

/** The log line for a foreign client at `remote`: what it is, that this is the peer port, and where it should go. */
export function foreignProtocolMessage(kind: ForeignProtocol, remote: string, hints: { client?: string; metrics?: string }): string {
  const clients = `clients connect to ${hints.client ?? 'the client port'}`;
  switch (kind) {
    case 'http2':
      return `a gRPC (HTTP/2) client at ${remote} connected to the peer port: this is the peer port; ${clients}; closing the connection`;
    case 'http1':
      return `an HTTP/1 request from ${remote} on the peer port: this is the peer port; ${clients}` +
        `${hints.metrics !== undefined ? `, the dashboard and metrics are on http://${hints.metrics}/` : ''}; closing the connection`;
    case 'tls':
      return `a TLS client at ${remote} connected to the peer port, which speaks plain text: this is the peer port; ${clients} ` +
        '(or it is a node with peer TLS while this one has none); closing the connection';
    default:
      return assertNever(kind, 'foreign protocol');
  }
}
