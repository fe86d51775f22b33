// `quorumlog role grant-permission|revoke-permission|get`: a role's
// permissions on every resource — etcd keys (as `etcdctl role ...`), quorum
// queues (`--queue`, by queue name or name prefix) and the metadata log
// (`--metadata`, the whole log) — over etcd's Auth service with quorumlog's
// extension fields (proto/etcd: Permission.resource, RoleGet.all_resources,
// RoleRevokePermission.resource). etcdctl cannot set those fields, so queue
// and metadata permissions are granted here (docs/QUEUES.md and
// docs/METADATA.md, "Permissions"). Changing a role needs root while auth is
// on: `--user root:password` (or `--user root --password ...`) authenticates
// once and sends the token on the call. Exit code 1 when the cluster refused.

import { Command, Option } from 'commander';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { METADATA_LOG_KEY, METADATA_LOG_RANGE_END } from '../services/auth/needs.js';
import type { PermissionResource, PermissionType } from '../services/auth/types.js';
import { addClientCredentialOptions, clientCredentials, clientOptions } from './credentials.js';
import { isTransportError, tryEndpoints } from './transport-errors.js';

type Call = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

/** Where the verbs connect, and as whom. */
export interface RoleVerbOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
}

/** What a permission covers, as the verbs take it: a resource and a key range. */
export interface PermissionTarget {
  readonly resource: PermissionResource;
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
}

const WIRE_RESOURCE: Readonly<Record<PermissionResource, string>> = { kv: 'KV', queue: 'QUEUE', metadata: 'METADATA' };
const WIRE_TYPE: Readonly<Record<PermissionType, string>> = { read: 'READ', write: 'WRITE', readwrite: 'READWRITE' };
const FROM_KEY = new Uint8Array([0]);

/** etcd's prefix end: the prefix with its last byte below 0xff incremented (and what follows dropped); [0x00] (every key from it) when there is none. */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if ((prefix[i] as number) < 0xff) {
      const end = Uint8Array.from(prefix.subarray(0, i + 1)); // a copy (a Buffer's slice would share the prefix's bytes)
      end[i] = (end[i] as number) + 1;
      return end;
    }
  }
  return FROM_KEY;
}

/** The permission a verb's arguments name: `--metadata` the whole log; `--queue` a queue name (or prefix); else an etcd key (or prefix, or from-key). */
export function permissionTarget(name: string | undefined, o: { queue?: boolean; metadata?: boolean; prefix?: boolean; fromKey?: boolean }): PermissionTarget {
  if (o.queue === true && o.metadata === true) throw new Error('give one of --queue and --metadata');
  if (o.metadata === true) {
    if (name !== undefined || o.prefix === true || o.fromKey === true) throw new Error('a metadata permission is on the whole log: give no name, --prefix or --from-key');
    return { resource: 'metadata', key: METADATA_LOG_KEY, rangeEnd: METADATA_LOG_RANGE_END };
  }
  if (name === undefined || name === '') throw new Error(o.queue === true ? 'give a queue name (or a name prefix with --prefix)' : 'give a key (or a key prefix with --prefix)');
  if (o.prefix === true && o.fromKey === true) throw new Error('give one of --prefix and --from-key');
  const key = Buffer.from(name, 'utf8');
  const rangeEnd = o.prefix === true ? prefixRangeEnd(key) : o.fromKey === true ? FROM_KEY : new Uint8Array(0);
  return { resource: o.queue === true ? 'queue' : 'kv', key: new Uint8Array(key), rangeEnd };
}

/** One permission's range as `role get` prints it. */
export function formatRange(resource: string, key: Buffer, rangeEnd: Buffer): string {
  if (resource === 'METADATA' && key.equals(Buffer.from(METADATA_LOG_KEY)) && rangeEnd.equals(Buffer.from(METADATA_LOG_RANGE_END))) return 'the whole log';
  const k = key.toString('utf8');
  if (rangeEnd.length === 0) return k;
  if (rangeEnd.equals(Buffer.from(FROM_KEY))) return `[${k}, <open ended>`;
  const end = rangeEnd.toString('utf8');
  return rangeEnd.equals(Buffer.from(prefixRangeEnd(key))) ? `[${k}, ${end}) (prefix ${k})` : `[${k}, ${end})`;
}

interface WirePermission { permType: string; key: Buffer; range_end: Buffer; resource: string }

/** `role get`'s lines: each resource's READ and WRITE ranges (READWRITE is listed under both, as etcdctl does). */
export function formatRole(role: string, perms: readonly WirePermission[]): string[] {
  const lines = [`Role ${role}`];
  for (const [resource, title] of [['KV', 'KV'], ['QUEUE', 'Queue'], ['METADATA', 'Metadata']] as const) {
    for (const [type, label] of [['READ', 'Read'], ['WRITE', 'Write']] as const) {
      lines.push(`${title} ${label}:`);
      for (const p of perms) {
        if ((p.resource ?? 'KV') !== resource || (p.permType !== type && p.permType !== 'READWRITE')) continue;
        lines.push(`\t${formatRange(resource, p.key, p.range_end)}`);
      }
    }
  }
  return lines;
}

/** Calls Auth.`method` on the first endpoint that answers, as the user the verb's --user signed in (src/cli/credentials.ts). */
function authCall(o: RoleVerbOptions, method: string, req: unknown): Promise<Record<string, unknown>> {
  const ctor = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Auth'] as grpc.ServiceClientConstructor;
  return tryEndpoints(o.endpoints, async (e) => {
    const c = new ctor(e, clientCredentials(), clientOptions()) as unknown as grpc.Client & Record<string, Call>;
    try {
      return await new Promise((resolve, reject) => {
        (c[method] as Call).call(c, req, new grpc.Metadata(), { deadline: Date.now() + o.timeoutMs }, (err, res) => (err !== null ? reject(err) : resolve(res)));
      });
    } finally {
      c.close();
    }
  });
}

/** Runs one verb; returns the exit code. */
export async function runRole(verb: 'grant-permission' | 'revoke-permission' | 'get', o: RoleVerbOptions, args: {
  role: string; type?: PermissionType; target?: PermissionTarget; json?: boolean;
}, out: (line: string) => void): Promise<number> {
  try {
    switch (verb) {
      case 'grant-permission': {
        const t = args.target as PermissionTarget;
        await authCall(o, 'RoleGrantPermission', {
          name: args.role,
          perm: { permType: WIRE_TYPE[args.type as PermissionType], key: Buffer.from(t.key), range_end: Buffer.from(t.rangeEnd), resource: WIRE_RESOURCE[t.resource] },
        });
        out(`Role ${args.role} updated`);
        return 0;
      }
      case 'revoke-permission': {
        const t = args.target as PermissionTarget;
        await authCall(o, 'RoleRevokePermission', { role: args.role, key: Buffer.from(t.key), range_end: Buffer.from(t.rangeEnd), resource: WIRE_RESOURCE[t.resource] });
        out(`Permission of range ${formatRange(WIRE_RESOURCE[t.resource], Buffer.from(t.key), Buffer.from(t.rangeEnd))} is revoked from role ${args.role}`);
        return 0;
      }
      case 'get': {
        const res = await authCall(o, 'RoleGet', { role: args.role, all_resources: true });
        const perms = (res['perm'] as WirePermission[] | undefined) ?? [];
        if (args.json === true) {
          out(JSON.stringify(perms.map((p) => ({
            resource: p.resource, type: p.permType, key: p.key.toString('utf8'), rangeEnd: p.range_end.toString('utf8'), range: formatRange(p.resource, p.key, p.range_end),
          })), null, 2));
        } else for (const l of formatRole(args.role, perms)) out(l);
        return 0;
      }
    }
  } catch (e) {
    if (isTransportError(e)) throw e; // one line on stderr from the program (transport-errors.ts)
    const se = e as Partial<grpc.ServiceError>;
    out(`role ${verb}: ${typeof se.details === 'string' && se.details !== '' ? se.details : (e as Error).message}`);
    return 1;
  }
}

/** Adds `quorumlog role ...` to the program. */
export function addRoleCommands(cmd: Command, out: (line: string) => void): void {
  const role = cmd.command('role').description('a role\'s permissions on keys, quorum queues (--queue) and the metadata log (--metadata) (etcd\'s Auth API; root only while auth is on)');
  type O = { endpoints: string; timeoutMs: string };
  const opts = (o: O): RoleVerbOptions => ({ endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: Number(o.timeoutMs) });
  const verb = (name: string, description: string): Command => addClientCredentialOptions(role.command(name).description(description))
    .option('--endpoints <list>', 'client endpoints, tried in order', '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381')
    .option('--timeout-ms <ms>', 'per-request timeout', '10000');
  const resourceFlags = (c: Command): Command => c
    .option('--queue', 'a permission on quorum queues: <name> is a queue name (a name prefix with --prefix)')
    .option('--metadata', 'a permission on the metadata log (the whole log; give no name)')
    .option('--prefix', 'every key / queue name starting with <name>')
    .addOption(new Option('--from-key', 'every key from <name> on (keys only)').conflicts('prefix'));
  type R = O & { queue?: boolean; metadata?: boolean; prefix?: boolean; fromKey?: boolean };
  resourceFlags(verb('grant-permission', 'grant a role READ, WRITE or READWRITE on a key (range), a queue name (prefix) with --queue, or the metadata log with --metadata; prints "Role <role> updated"'))
    .argument('<role>')
    .argument('<type>', 'read, write or readwrite')
    .argument('[name]', 'the key or queue name (none for --metadata)')
    .action(async (roleName: string, type: string, name: string | undefined, o: R) => {
      const t = type.toLowerCase();
      if (t !== 'read' && t !== 'write' && t !== 'readwrite') throw new Error(`permission type ${type}: give read, write or readwrite`);
      process.exitCode = await runRole('grant-permission', opts(o), { role: roleName, type: t, target: permissionTarget(name, o) }, out);
    });
  resourceFlags(verb('revoke-permission', 'take back the permission a role holds on exactly that key (range), queue name (prefix) with --queue, or the metadata log with --metadata'))
    .argument('<role>')
    .argument('[name]', 'the key or queue name (none for --metadata)')
    .action(async (roleName: string, name: string | undefined, o: R) => {
      process.exitCode = await runRole('revoke-permission', opts(o), { role: roleName, target: permissionTarget(name, o) }, out);
    });
  verb('get', 'show a role\'s permissions on every resource: keys, queues and the metadata log')
    .argument('<role>')
    .option('--json', 'print JSON')
    .action(async (roleName: string, o: O & { json?: boolean }) => {
      process.exitCode = await runRole('get', opts(o), { role: roleName, json: o.json === true }, out);
    });
}
