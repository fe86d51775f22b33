// The replicated services every `quorumlog start` node runs, in one place:
// the node (src/server/node-process.ts) applies its log through them, and a
// restore (src/server/backup.ts) checks a backup against the same set, so
// that a service added here is both served and restorable.

import { KvStateMachine } from '../services/kv/state-machine.js';
import { ServiceStateMachine } from '../services/machine.js';
import { MembersStateMachine } from '../services/members/state-machine.js';
import { MetadataStateMachine } from '../services/metadata/state-machine.js';
import { attachQueue, type QueueStateMachine } from '../services/queue/state-machine.js';
import { attachAuth, type NodeAuth } from './auth/node-auth.js';

export interface NodeServices {
  readonly services: ServiceStateMachine;
  readonly kv: KvStateMachine;
  readonly queues: QueueStateMachine;
  readonly metadata: MetadataStateMachine;
  readonly members: MembersStateMachine;
  readonly auth: NodeAuth;
}

/** A fresh set of the node's services, registered in one multiplexer with the auth gate in front of them. */
export function nodeServices(): NodeServices {
  const kv = new KvStateMachine();
  // One log for every service: the key-value store, quorum queues, the metadata log (brokers and controllers reuse
  // this one), where members are reached (docs/MEMBERSHIP.md), and users, roles and permissions with the gate that
  // checks every command against them where it applies (src/services/auth; registered last: its gate consults the others).
  const services = new ServiceStateMachine().register('kv', kv);
  const queues = attachQueue(services);
  const metadata = new MetadataStateMachine();
  services.register('metadata', metadata);
  const members = new MembersStateMachine();
  services.register('members', members);
  const auth = attachAuth(services, kv.store);
  return { services, kv, queues, metadata, members, auth };
}
