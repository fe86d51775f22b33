// Client TLS for every `quorumlog` verb that talks to a cluster: the
// `--cacert`, `--cert` and `--key` flags (etcdctl's names), which a node with
// `clientTls` requires. The program sets them once, before the verb runs
// (a commander preAction hook in quorumlog.ts), and every gRPC channel the
// verb opens takes its credentials from here: one CLI invocation talks to one
// cluster with one identity.

import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';

/** PEM file paths for mutual TLS. */
export interface ClientTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

let current: grpc.ChannelCredentials | null = null;

/** Adds --cacert, --cert and --key to a verb. */
export function addClientTlsOptions(c: Command): Command {
  return c
    .option('--cacert <file>', 'CA certificate of a cluster with client TLS (with --cert and --key)')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)');
}

/** The TLS files named by a verb's flags; undefined when none; throws when only some are given. */
export function tlsFromFlags(o: { cacert?: unknown; cert?: unknown; key?: unknown }): ClientTlsFiles | undefined {
  const given = [o.cacert, o.cert, o.key].filter((x) => typeof x === 'string');
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new Error('client TLS needs all three of --cacert, --cert and --key');
  return { ca: o.cacert as string, cert: o.cert as string, key: o.key as string };
}

/** Sets the credentials of the channels this process opens from now on (undefined: plain text). */
export function setClientTls(tls: ClientTlsFiles | undefined): void {
  current = tls === undefined ? null
    : grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert));
}

/** The credentials for a new channel to a node's client port. */
export function clientCredentials(): grpc.ChannelCredentials {
  return current ?? grpc.credentials.createInsecure();
}
