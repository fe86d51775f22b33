// What a request needs the auth service to allow, as a list of (resource,
// access, range) needs, or 'root'. One function per service, used twice: by
// the server when a request arrives (to refuse it before it costs a log
// entry or a read) and by the auth gate when the command applies (gate.ts), so
// that the check that decides is the one made against the state the command
// applies to.
//
// The key-value rules are etcd 3.4's (etcdserver/apply_auth.go): reads need
// READ on their range; puts need WRITE on the key, and READ too with prev_kv;
// a put with a lease, and a lease revoke, need WRITE on every key already
// attached to the lease; a txn needs READ on every compare's range and what
// each operation in both branches needs; compaction and the cluster's own
// commands need root.
//
// Quorum queues (docs/QUEUES.md, "Permissions"): the key is the queue's name
// (its UTF-8 bytes), so a prefix grants a family of queues. Exchanges share
// that namespace (as in RabbitMQ, where one pattern covers queue and exchange
// names): an exchange's key is its name. READ consumes (attach, dequeue, and
// settle / return / discard / cancel on the queue of the consumer they name,
// as the queue state holds it; stats); WRITE publishes and declares (on the
// queue, and on its dead-letter queue, which a declare makes messages flow
// into). For the AMQP commands: exchangeDeclare / exchangeDelete need WRITE
// on the exchange; bind / unbind WRITE on the queue and READ on the exchange;
// publish WRITE on the exchange, or, to the default exchange '', WRITE on
// the routing key (the queue it names); declareQueue WRITE on the queue and,
// with a dead-letter exchange, WRITE on where dead letters go: the exchange,
// or for the default exchange the dead-letter routing key (the queue), or
// without one the name '' (only a grant covering the empty key, such as the
// whole namespace, allows that: the messages' own keys decide where they
// go); deleteQueue and purge WRITE on the queue. A consumer the state does
// not know needs nothing: the queue machine refuses the command itself.
// nodeDown is the cluster's own (root). The metadata log (docs/METADATA.md, "Permissions")
// is one resource: READ on the whole log follows it and reads its image,
// WRITE on the whole log appends records; the whole log is the key range
// METADATA_LOG_KEY..METADATA_LOG_RANGE_END, "every key".

import { assertNever } from '../../util/assert.js';
import { decodeCommandView, KvCodecError } from '../kv/codec.js';
import type { KvCommand, RangeRequest, RequestOp, TxnRequest } from '../kv/types.js';
import { decodeQueueCommand, QueueCodecError } from '../queue/codec.js';
import type { QueueStateMachine } from '../queue/state-machine.js';
import type { QueueCommand } from '../queue/types.js';
import type { Access } from './permissions.js';
import type { AuthStateMachine } from './state-machine.js';
import type { PermissionResource } from './types.js';

export interface Need {
  readonly resource: PermissionResource;
  readonly access: Access;
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
}

/** 'root': only a root user may; otherwise every need must be granted (an empty list needs nothing). */
export type Needs = 'root' | readonly Need[];

const NONE = new Uint8Array(0);

/** The keys attached to a lease, in the state the check is made against. */
export type LeaseKeys = (leaseId: number) => readonly Uint8Array[];

function kv(access: Access, key: Uint8Array, rangeEnd: Uint8Array): Need {
  return { resource: 'kv', access, key, rangeEnd };
}

function putNeeds(out: Need[], key: Uint8Array, prevKv: boolean, lease: number, leaseKeys: LeaseKeys): void {
  out.push(kv('write', key, NONE));
  if (prevKv) out.push(kv('read', key, NONE));
  if (lease !== 0) for (const k of leaseKeys(lease)) out.push(kv('write', k, NONE));
}

function opNeeds(out: Need[], op: RequestOp, leaseKeys: LeaseKeys): void {
  switch (op.type) {
    case 'range':
      out.push(kv('read', op.request.key, op.request.rangeEnd));
      return;
    case 'put':
      putNeeds(out, op.request.key, op.request.prevKv, op.request.lease, leaseKeys);
      return;
    case 'deleteRange':
      out.push(kv('write', op.request.key, op.request.rangeEnd));
      if (op.request.prevKv) out.push(kv('read', op.request.key, op.request.rangeEnd));
      return;
    case 'txn':
      txnNeeds(out, op.request, leaseKeys);
      return;
    default:
      assertNever(op);
  }
}

function txnNeeds(out: Need[], t: TxnRequest, leaseKeys: LeaseKeys): void {
  for (const c of t.compare) out.push(kv('read', c.key, c.rangeEnd));
  for (const op of t.success) opNeeds(out, op, leaseKeys);
  for (const op of t.failure) opNeeds(out, op, leaseKeys);
}

/** What a key-value command needs. */
export function kvCommandNeeds(cmd: KvCommand, leaseKeys: LeaseKeys): Needs {
  const out: Need[] = [];
  switch (cmd.type) {
    case 'put':
      putNeeds(out, cmd.request.key, cmd.request.prevKv, cmd.request.lease, leaseKeys);
      return out;
    case 'deleteRange':
      opNeeds(out, cmd, leaseKeys);
      return out;
    case 'txn':
      txnNeeds(out, cmd.request, leaseKeys);
      return out;
    case 'leaseGrant':
      return out; // etcd checks nothing on a grant: a lease without keys gives no access
    case 'leaseRevoke':
      for (const k of leaseKeys(cmd.request.id)) out.push(kv('write', k, NONE));
      return out;
    case 'compact':
    case 'leaseExpire':
    case 'leaseEpoch':
      return 'root';
    default:
      return assertNever(cmd);
  }
}

/** What a range read needs. */
export function rangeNeeds(r: RangeRequest): Needs {
  return [kv('read', r.key, r.rangeEnd)];
}

/** Whether `user` has every need (auth being on). */
export function allowed(auth: AuthStateMachine, user: string, needs: Needs): boolean {
  if (auth.isRoot(user)) return true;
  if (needs === 'root') return false;
  if (auth.user(user) === undefined) return false;
  for (const n of needs) if (!auth.permitted(user, n.resource, n.access, n.key, n.rangeEnd)) return false;
  return true;
}

/** The gate's check of key-value commands (gate.ts): what the command needs, against the store it applies to. */
export function kvApplyCheck(auth: AuthStateMachine, store: { leaseKeys(id: number): readonly Uint8Array[] }): (user: string, data: Uint8Array, start: number, end: number) => boolean {
  const leaseKeys: LeaseKeys = (id) => store.leaseKeys(id);
  return (user, data, start, end) => {
    let cmd: KvCommand;
    try {
      cmd = decodeCommandView(data, start, end);
    } catch (e) {
      if (e instanceof KvCodecError) return true; // the store refuses it itself, alike everywhere
      throw e;
    }
    // The common write, without building its list of needs: what kvCommandNeeds gives a put with no prev_kv and no lease.
    if (cmd.type === 'put' && !cmd.request.prevKv && cmd.request.lease === 0) {
      return auth.isRoot(user) || auth.permitted(user, 'kv', 'write', cmd.request.key, NONE);
    }
    return allowed(auth, user, kvCommandNeeds(cmd, leaseKeys));
  };
}

const utf8 = new TextEncoder();

/** A need on one queue or exchange (its name's UTF-8 bytes as the key). */
export function queueNeed(access: Access, queue: string): Need {
  return { resource: 'queue', access, key: utf8.encode(queue), rangeEnd: NONE };
}

/** The queue a consumer reads from, in the state the check is made against (undefined: no such consumer). */
export type ConsumerQueue = (consumerId: string) => string | undefined;

/** What a queue command needs. */
export function queueCommandNeeds(cmd: QueueCommand, consumerQueue: ConsumerQueue): Needs {
  switch (cmd.type) {
    case 'declare':
      return cmd.deadLetterQueue === null ? [queueNeed('write', cmd.queue)] : [queueNeed('write', cmd.queue), queueNeed('write', cmd.deadLetterQueue)];
    case 'declareQueue': {
      const out = [queueNeed('write', cmd.queue)];
      const dlx = cmd.deadLetterExchange;
      if (dlx !== null) out.push(queueNeed('write', dlx !== '' ? dlx : cmd.deadLetterRoutingKey ?? ''));
      return out;
    }
    case 'enqueue':
    case 'deleteQueue':
    case 'purge':
      return [queueNeed('write', cmd.queue)];
    case 'exchangeDeclare':
    case 'exchangeDelete':
      return [queueNeed('write', cmd.exchange)];
    case 'bind':
    case 'unbind':
      return [queueNeed('write', cmd.queue), queueNeed('read', cmd.exchange)];
    case 'publish':
      return [queueNeed('write', cmd.exchange === '' ? cmd.routingKey : cmd.exchange)];
    case 'attach':
    case 'dequeue':
      return [queueNeed('read', cmd.queue)];
    case 'settle':
    case 'return':
    case 'discard':
    case 'cancel':
    case 'detach': {
      const queue = consumerQueue(cmd.consumerId);
      return queue === undefined ? [] : [queueNeed('read', queue)];
    }
    case 'nodeDown':
      return 'root';
    default:
      return assertNever(cmd);
  }
}

/** The whole metadata log as a key range: [0x00] to [0x00], every key. A metadata permission grants only if it covers it. */
export const METADATA_LOG_KEY: Uint8Array = new Uint8Array([0]);
export const METADATA_LOG_RANGE_END: Uint8Array = new Uint8Array([0]);

/** What a metadata request needs: 'read' to follow the log or read its image, 'write' to append a record. */
export function metadataNeeds(access: Access): Needs {
  return [{ resource: 'metadata', access, key: METADATA_LOG_KEY, rangeEnd: METADATA_LOG_RANGE_END }];
}

/** The gate's check of queue commands: what the command needs, against the queue state it applies to (consumers looked up there). */
export function queueApplyCheck(auth: AuthStateMachine, machine: Pick<QueueStateMachine, 'consumer'>): (user: string, data: Uint8Array, start: number, end: number) => boolean {
  const consumerQueue: ConsumerQueue = (id) => machine.consumer(id)?.queue;
  return (user, data, start, end) => {
    let cmd: QueueCommand;
    try {
      cmd = decodeQueueCommand(data.subarray(start, end));
    } catch (e) {
      if (e instanceof QueueCodecError) return true; // the queue machine refuses it itself ('malformed'), alike everywhere
      throw e;
    }
    return allowed(auth, user, queueCommandNeeds(cmd, consumerQueue));
  };
}

/** The gate's check of metadata commands: every command appends a record, so each needs WRITE on the log (a malformed one too: the machine rejects it, but only a writer may try). */
export function metadataApplyCheck(auth: AuthStateMachine): (user: string, data: Uint8Array, start: number, end: number) => boolean {
  const needs = metadataNeeds('write');
  return (user) => allowed(auth, user, needs);
}
