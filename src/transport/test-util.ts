// Helpers for the transport tests: a pino logger that captures its lines, a
// poll-until helper, clusters of TcpTransports on 127.0.0.1 port 0, and
// certificates made with openssl for the mutual TLS tests.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { PeerFrame } from './types.js';
import { TcpTransport, type HostPort, type TcpTransportOptions } from './tcp.js';

/** One captured log line (pino's JSON). */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** pino's numeric level of `warn`. */
export const WARN = 40;

/** A debug-level pino logger whose lines land in `lines`. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

/** Polls `cond` every 5 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A started transport with what it received and logged. */
export interface TestNode {
  readonly id: NodeId;
  readonly transport: TcpTransport;
  readonly received: { from: NodeId; frame: PeerFrame }[];
  readonly lines: LogLine[];
}

/** Builds and starts one transport on 127.0.0.1:port, recording frames and log lines. */
export async function startNode(
  id: NodeId, peers: Map<NodeId, HostPort>, extra: Partial<TcpTransportOptions> = {}, port = 0,
): Promise<TestNode> {
  const { logger, lines } = captureLogger();
  const transport = new TcpTransport({
    clusterId: 'red', nodeId: id, listen: { host: '127.0.0.1', port }, peers, logger,
    reconnectMinMs: 10, reconnectMaxMs: 100, ...extra,
  });
  const received: { from: NodeId; frame: PeerFrame }[] = [];
  transport.onFrame((from, frame) => received.push({ from, frame }));
  await transport.start();
  const addr = transport.address;
  if (addr === null) throw new Error('no address after start');
  peers.set(id, addr);
  return { id, transport, received, lines };
}

/**
 * Starts nodes with the given ids, all peers of each other, on ephemeral
 * ports; the shared peer map is filled in as each one starts (addresses are
 * read at dial time).
 */
export async function startCluster(names: readonly string[], extra: Partial<TcpTransportOptions> = {}): Promise<{ nodes: TestNode[]; peers: Map<NodeId, HostPort> }> {
  const peers = new Map<NodeId, HostPort>(names.map((n) => [nodeId(n), { host: '127.0.0.1', port: 0 }]));
  const nodes: TestNode[] = [];
  for (const n of names) nodes.push(await startNode(nodeId(n), peers, extra));
  return { nodes, peers };
}

/** PEM contents of a CA and of certificates it signed. */
export interface TestPki {
  readonly ca: string;
  /** cert and key of each named subject (IP SAN 127.0.0.1, usable as client and server). */
  readonly certs: ReadonlyMap<string, { cert: string; key: string }>;
}

/** Makes a CA and a certificate per name with /usr/bin/openssl (EC P-256, valid one day) in a temp dir, then deletes it. */
export function makePki(names: readonly string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-pki-'));
  const openssl = (...args: string[]): void => void execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: 'pipe' });
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=quorumlog test CA');
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n');
    const certs = new Map<string, { cert: string; key: string }>();
    for (const name of names) {
      openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'ext.cnf');
      certs.set(name, { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') });
    }
    return { ca: readFileSync(join(dir, 'ca.crt'), 'utf8'), certs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
