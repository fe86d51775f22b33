// `quorumlog transfer-leader --to ID`: hands leadership to another voter, as
// `etcdctl move-leader` does: finds the leader among the endpoints
// (Maintenance.Status), the target's member id by name (Cluster.MemberList),
// and asks the leader to move (Maintenance.MoveLeader), which answers once
// the target leads. Exit code 1 when it could not.

import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { clientCredentials, clientOptions } from './credentials.js';
import { classifyTransportError, EndpointsUnreachableError, isTransportError, type TransportFailure } from './transport-errors.js';

type Call = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

function client(service: string, endpoint: string): grpc.Client & Record<string, Call> {
  const ctor = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)[service] as grpc.ServiceClientConstructor;
  return new ctor(endpoint, clientCredentials(), clientOptions()) as unknown as grpc.Client & Record<string, Call>;
}

function call(c: grpc.Client & Record<string, Call>, method: string, req: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (c[method] as Call).call(c, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, res) => (e !== null ? reject(e) : resolve(res)));
  });
}

/** Moves leadership to the member named `to`; returns the exit code. */
export async function runTransferLeader(endpoints: readonly string[], to: string, timeoutMs: number, out: (line: string) => void): Promise<number> {
  const opened: grpc.Client[] = [];
  const open = (service: string, e: string): grpc.Client & Record<string, Call> => {
    const c = client(service, e);
    opened.push(c);
    return c;
  };
  try {
    let leaderEndpoint: string | null = null;
    let members: { ID: string; name: string }[] | null = null;
    const failures: { endpoint: string; failure: TransportFailure }[] = [];
    for (const e of endpoints) {
      try {
        const s = await call(open('Maintenance', e), 'Status', {}, timeoutMs);
        const self = (s['header'] as { member_id?: string } | undefined)?.member_id;
        if (members === null) members = ((await call(open('Cluster', e), 'MemberList', {}, timeoutMs))['members'] as { ID: string; name: string }[]);
        if (self !== undefined && self === s['leader']) leaderEndpoint = e;
      } catch (err) {
        // this endpoint is down (or refused): try the others
        const f = classifyTransportError(err);
        if (f !== null) failures.push({ endpoint: e, failure: f });
      }
      if (leaderEndpoint !== null && members !== null) break;
    }
    if (members === null) {
      if (failures.length === endpoints.length) throw new EndpointsUnreachableError(failures); // one line on stderr from the program
      out(`transfer-leader: no endpoint answered (${endpoints.join(', ')})`);
      return 1;
    }
    const target = members.find((m) => m.name === to);
    if (target === undefined) {
      out(`transfer-leader: no member named ${to} (members: ${members.map((m) => m.name).join(', ')})`);
      return 1;
    }
    if (leaderEndpoint === null) {
      out('transfer-leader: none of the endpoints is the leader (is there one? try `quorumlog status`)');
      return 1;
    }
    await call(open('Maintenance', leaderEndpoint), 'MoveLeader', { targetID: target.ID }, timeoutMs);
    out(`leader is now ${to}`);
    return 0;
  } catch (e) {
    if (isTransportError(e)) throw e;
    const se = e as Partial<grpc.ServiceError>;
    out(`transfer-leader: ${typeof se.details === 'string' && se.details !== '' ? se.details : (e as Error).message}`);
    return 1;
  } finally {
    for (const c of opened) c.close();
  }
}
