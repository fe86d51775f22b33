// `quorumlog member list|add|remove|promote|update`: membership changes over
// etcd's Cluster service, as `etcdctl member ...` makes them (and with the
// same output lines), but naming members by node id. Any endpoint will do:
// a follower forwards changes to the leader. A change answers once it has
// committed. Exit code 1 when the cluster refused or no endpoint answered.

import type { Command } from 'commander';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { parseAddress, formatAddress } from '../server/config.js';
import { addClientCredentialOptions, clientCredentials, clientOptions } from './credentials.js';
import { isTransportError, tryEndpoints } from './transport-errors.js';

type Call = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

/** A member as MemberList answers it. */
interface WireMember {
  readonly ID: string;
  readonly name: string;
  readonly peerURLs: string[];
  readonly clientURLs: string[];
  readonly isLearner: boolean;
}

/** Options common to the member verbs. */
export interface MemberVerbOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
}

const hex = (id: string): string => BigInt(id).toString(16);

/** Calls Cluster.`method` on the first endpoint that answers (a transport failure moves on; a refusal from the cluster is final). */
function clusterCall(o: MemberVerbOptions, method: string, req: unknown): Promise<Record<string, unknown>> {
  const ctor = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Cluster'] as grpc.ServiceClientConstructor;
  return tryEndpoints(o.endpoints, async (e) => {
    const c = new ctor(e, clientCredentials(), clientOptions()) as unknown as grpc.Client & Record<string, Call>;
    try {
      return await new Promise<Record<string, unknown>>((resolve, reject) => {
        (c[method] as Call).call(c, req, new grpc.Metadata(), { deadline: Date.now() + o.timeoutMs }, (err, res) => (err !== null ? reject(err) : resolve(res)));
      });
    } finally {
      c.close();
    }
  });
}

/** The member list as etcdctl prints it (simple format): ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER. */
export function formatMemberList(members: readonly WireMember[]): string[] {
  return members.map((m) => [hex(m.ID), m.name !== '' ? 'started' : 'unstarted', m.name, m.peerURLs.join(','), m.clientURLs.join(','), String(m.isLearner)].join(', '));
}

async function memberId(o: MemberVerbOptions, name: string): Promise<{ id: string; members: WireMember[] }> {
  const res = await clusterCall(o, 'MemberList', {});
  const members = res['members'] as WireMember[];
  const m = members.find((x) => x.name === name) ?? members.find((x) => hex(x.ID) === name.toLowerCase());
  if (m === undefined) throw new Error(`no member named ${name} (members: ${members.map((x) => x.name).join(', ')})`);
  return { id: m.ID, members };
}

const clusterHex = (res: Record<string, unknown>): string => hex((res['header'] as { cluster_id: string }).cluster_id);

/** Runs one verb; returns the exit code. */
export async function runMember(verb: 'list' | 'add' | 'remove' | 'promote' | 'update', o: MemberVerbOptions, args: {
  name?: string; peer?: string; client?: string; metrics?: string; learner?: boolean; json?: boolean;
}, out: (line: string) => void): Promise<number> {
  try {
    switch (verb) {
      case 'list': {
        const res = await clusterCall(o, 'MemberList', {});
        const members = res['members'] as WireMember[];
        if (args.json === true) out(JSON.stringify(members.map((m) => ({ ...m, ID: hex(m.ID) })), null, 2));
        else for (const l of formatMemberList(members)) out(l);
        return 0;
      }
      case 'add': {
        const name = args.name as string;
        const peer = formatAddress(parseAddress(args.peer, '--peer'));
        const clientURLs = args.client === undefined ? [] : [`http://${formatAddress(parseAddress(args.client, '--client'))}`];
        const res = await clusterCall(o, 'MemberAdd', { peerURLs: [`http://${peer}#${name}`], isLearner: args.learner === true, clientURLs });
        const m = res['member'] as WireMember;
        out(`Member ${hex(m.ID)} added to cluster ${clusterHex(res)}`);
        out(args.learner === true ? `${name} joins as a learner (observer); promote it with: quorumlog member promote ${name}`
          : `${name} joins as an observer and is promoted to voter as soon as it has caught up`);
        out('');
        out(`Start ${name} with a config that lists the current members as they are and itself as an observer (never as a voter), e.g. these members:`);
        const members = (res['members'] as WireMember[]).filter((x) => x.name !== name);
        const strip = (u: string | undefined): string => (u ?? '').replace(/^https?:\/\//, '').replace(/#.*$/, '');
        const lines = members.map((x) => `  {"id": "${x.name}", "role": "${x.isLearner ? 'observer' : 'voter'}", "peer": "${strip(x.peerURLs[0])}", "client": "${strip(x.clientURLs[0])}", "metrics": "<its metrics host:port>"}`);
        lines.push(`  {"id": "${name}", "role": "observer", "peer": "${peer}", "client": "${args.client ?? '<host:port>'}", "metrics": "${args.metrics ?? '<host:port>'}"}`);
        out(lines.join(',\n'));
        out(`with "nodeId": "${name}", the cluster's "clusterId" and an empty "dataDir"; then: quorumlog start --config <file>`);
        return 0;
      }
      case 'remove': {
        const { id } = await memberId(o, args.name as string);
        const res = await clusterCall(o, 'MemberRemove', { ID: id });
        out(`Member ${hex(id)} removed from cluster ${clusterHex(res)}`);
        return 0;
      }
      case 'promote': {
        const { id } = await memberId(o, args.name as string);
        const res = await clusterCall(o, 'MemberPromote', { ID: id });
        out(`Member ${hex(id)} promoted in cluster ${clusterHex(res)}`);
        return 0;
      }
      case 'update': {
        const { id } = await memberId(o, args.name as string);
        const peer = formatAddress(parseAddress(args.peer, '--peer'));
        const res = await clusterCall(o, 'MemberUpdate', { ID: id, peerURLs: [`http://${peer}`] });
        out(`Member ${hex(id)} updated in cluster ${clusterHex(res)}`);
        return 0;
      }
    }
  } catch (e) {
    if (isTransportError(e)) throw e; // one line on stderr from the program (transport-errors.ts)
    const se = e as Partial<grpc.ServiceError>;
    out(`member ${verb}: ${typeof se.details === 'string' && se.details !== '' ? se.details : (e as Error).message}`);
    return 1;
  }
}

/** Adds `quorumlog member ...` to the program. */
export function addMemberCommands(cmd: Command, out: (line: string) => void): void {
  const member = cmd.command('member').description('list, add, remove, promote and update members (etcd\'s Cluster API; any endpoint forwards to the leader)');
  const opts = (o: { endpoints: string; timeoutMs: string }): MemberVerbOptions =>
    ({ endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: Number(o.timeoutMs) });
  const verb = (name: string, description: string): Command => addClientCredentialOptions(member.command(name).description(description))
    .option('--endpoints <list>', 'client endpoints, tried in order', '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381')
    .option('--timeout-ms <ms>', 'per-request timeout', '10000');
  type O = { endpoints: string; timeoutMs: string };
  verb('list', 'list the members: ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER (as etcdctl member list)')
    .option('--json', 'print JSON')
    .action(async (o: O & { json?: boolean }) => {
      process.exitCode = await runMember('list', opts(o), { json: o.json === true }, out);
    });
  verb('add', 'add a member as an observer; promoted once caught up unless --learner; prints how to start it')
    .argument('<id>', 'the new member\'s node id')
    .requiredOption('--peer <host:port>', 'where peers reach it')
    .option('--client <host:port>', 'where clients reach it')
    .option('--metrics <host:port>', 'its metrics port (only for the printed config)')
    .option('--learner', 'stay a learner (observer) until `member promote`')
    .action(async (id: string, o: O & { peer: string; client?: string; metrics?: string; learner?: boolean }) => {
      process.exitCode = await runMember('add', opts(o), {
        name: id, peer: o.peer, learner: o.learner === true, ...(o.client !== undefined ? { client: o.client } : {}), ...(o.metrics !== undefined ? { metrics: o.metrics } : {}),
      }, out);
    });
  verb('remove', 'remove a member (by node id or hex member id); answers once the removal has committed')
    .argument('<id>')
    .action(async (id: string, o: O) => {
      process.exitCode = await runMember('remove', opts(o), { name: id }, out);
    });
  verb('promote', 'promote a learner (observer) to voter; refused until it has caught up')
    .argument('<id>')
    .action(async (id: string, o: O) => {
      process.exitCode = await runMember('promote', opts(o), { name: id }, out);
    });
  verb('update', 'give a member a new peer address')
    .argument('<id>')
    .requiredOption('--peer <host:port>', 'the new peer address')
    .action(async (id: string, o: O & { peer: string }) => {
      process.exitCode = await runMember('update', opts(o), { name: id, peer: o.peer }, out);
    });
}
