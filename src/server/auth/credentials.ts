// What a gRPC call brings to identify its caller: the `token` metadata that
// etcd's clients send after Authenticate, and the client certificate's
// common name when the connection is TLS with a client certificate.
//
// Behind protocol workers (src/server/protocol-workers), TLS ends in the
// worker and the call reaches the node's grpc-js server over a private Unix
// socket; the worker passes the certificate's common name in the header
// CLIENT_CERT_CN_HEADER, having removed any such header the client sent.
// Only then is the header trusted; a server that clients reach directly reads
// the certificate from its own TLS connection and ignores the header.

import type * as grpc from '@grpc/grpc-js';
import type { TLSSocket } from 'node:tls';
import type { Credentials } from './authorizer.js';

/** Set by a protocol worker on every call it passes on: the client certificate's common name (absent: none). */
export const CLIENT_CERT_CN_HEADER = 'x-quorumlog-client-cert-cn';

function firstString(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** The common name of a verified peer certificate's subject (a CN given twice is an array: take the first). */
function commonNameOf(subject: unknown): string | undefined {
  const cn = (subject as { CN?: unknown } | undefined)?.CN;
  if (typeof cn === 'string') return cn;
  if (Array.isArray(cn) && typeof cn[0] === 'string') return cn[0];
  return undefined;
}

/** The common name of the client certificate on a TLS socket, when the client presented one that verified. */
export function socketCertCommonName(socket: unknown): string | undefined {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (tls?.authorized !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  return commonNameOf(tls.getPeerCertificate().subject);
}

/** The caller's credentials on a grpc-js server call. */
export function grpcCredentials(call: { readonly metadata: grpc.Metadata; getAuthContext?: () => { readonly sslPeerCertificate?: { readonly subject?: unknown } } | null }, behindProtocolWorkers: boolean): Credentials {
  const token = firstString(call.metadata, 'token');
  const certCommonName = behindProtocolWorkers
    ? firstString(call.metadata, CLIENT_CERT_CN_HEADER)
    : commonNameOf(call.getAuthContext?.()?.sslPeerCertificate?.subject);
  return { token, certCommonName };
}

/** Set by a protocol worker on every call it passes on: the client's address (for the login throttle). */
export const CLIENT_ADDRESS_HEADER = 'x-quorumlog-client-address';
