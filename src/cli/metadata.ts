// `quorumlog metadata ...`: write metadata records and follow the metadata
// log over the metadata gRPC API (src/server/metadata). Writes print where
// the record landed; a rejected record prints its code and reason and exits
// with code 1; other failures (no node answers) exit with 2.
//
//   register-broker --id N --host H --port P [--rack R] [--epoch E] [--fenced]
//   unregister-broker|fence|unfence --id N [--epoch E]   (default: the broker's current epoch)
//   create-topic NAME --partitions N [--config key=value ...]
//   delete-topic NAME
//   assign TOPIC PARTITION=BROKER,BROKER... [...]
//   set-config KEY [VALUE] (--topic T | --broker N | --cluster) [--delete]
//   follow [--from OFFSET] [--limit N] [--json]
//   image [--json] [--serializable]

import { Command } from 'commander';
import { MetadataClient, type FollowEvent } from '../server/metadata/client.js';
import type { MetadataImage } from '../services/metadata/image.js';
import { MetadataRejectedError, type ConfigResource, type MetadataRecord } from '../services/metadata/types.js';
import { assertNever } from '../util/assert.js';
import { addClientCredentialOptions, clientCredentials, clientOptions } from './credentials.js';
import { isTransportError } from './transport-errors.js';

/** How the verbs reach the cluster. */
export interface MetadataVerbOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
}

/** Bad command-line arguments: printed, exit code 2. */
export class MetadataUsageError extends Error {
  override readonly name = 'MetadataUsageError';
}

function int(v: string, what: string): number {
  if (!/^-?[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new MetadataUsageError(`${what} must be an integer, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** One line that says what a record is. */
export function describeRecord(r: MetadataRecord): string {
  const res = (x: ConfigResource): string => (x.type === 'topic' ? `topic ${x.name}` : x.type === 'broker' ? `broker ${x.brokerId}` : 'cluster');
  switch (r.type) {
    case 'registerBroker':
      return `registerBroker ${r.brokerId} epoch=${r.epoch} ${r.host}:${r.port}${r.rack !== null ? ` rack=${r.rack}` : ''}${r.fenced ? ' fenced' : ''}`;
    case 'unregisterBroker':
    case 'fenceBroker':
    case 'unfenceBroker':
      return `${r.type} ${r.brokerId} epoch=${r.epoch}`;
    case 'createTopic':
      return `createTopic ${r.name} partitions=${r.partitions}${r.configs.map((c) => ` ${c.key}=${c.value}`).join('')}`;
    case 'deleteTopic':
      return `deleteTopic ${r.name}`;
    case 'assignPartitions':
      return `assignPartitions ${r.topic}${r.assignments.map((a) => ` ${a.partition}=${a.replicas.join(',')}`).join('')}`;
    case 'setConfig':
      return `setConfig ${res(r.resource)} ${r.key}${r.value === null ? ' (deleted)' : `=${r.value}`}`;
    default: return assertNever(r, 'metadata record');
  }
}

/** The image as text lines. */
export function describeImage(img: MetadataImage): string[] {
  const lines = [`offset ${img.offset}`];
  for (const b of img.brokerList()) {
    lines.push(`broker ${b.brokerId} epoch=${b.epoch} ${b.host}:${b.port}${b.rack !== null ? ` rack=${b.rack}` : ''}${b.fenced ? ' FENCED' : ''}`);
  }
  for (const t of img.topicList()) {
    lines.push(`topic ${t.name} id=${t.topicId} partitions=${t.partitions.length}${[...t.configs].map(([k, v]) => ` ${k}=${v}`).join('')}`);
    for (const p of t.partitions) lines.push(`  ${t.name}-${p.partition} replicas=${p.replicas.length === 0 ? '(unassigned)' : p.replicas.join(',')}`);
  }
  for (const id of [...img.brokerConfigs.keys()].sort((a, b) => a - b)) {
    lines.push(`broker-config ${id}${[...(img.brokerConfigs.get(id) ?? new Map<string, string>())].map(([k, v]) => ` ${k}=${v}`).join('')}`);
  }
  if (img.clusterConfigs.size > 0) lines.push(`cluster-config${[...img.clusterConfigs].map(([k, v]) => ` ${k}=${v}`).join('')}`);
  return lines;
}

/** Writes one record; prints where it landed. Exit code 0, 1 when rejected. */
export async function runMetadataWrite(o: MetadataVerbOptions, build: (client: MetadataClient) => Promise<MetadataRecord> | MetadataRecord, out: (l: string) => void): Promise<number> {
  const client = new MetadataClient(o.endpoints, o.timeoutMs, clientCredentials(), clientOptions());
  try {
    const record = await build(client);
    const a = await client.write(record);
    out(`OK offset ${a.offset} (log index ${a.index}): ${describeRecord(a.record)}`);
    return 0;
  } catch (e) {
    if (e instanceof MetadataRejectedError) {
      out(`rejected (${e.code}): ${e.message}`);
      return 1;
    }
    if (e instanceof MetadataUsageError) {
      out(e.message);
      return 2;
    }
    throw e;
  } finally {
    client.close();
  }
}

/** Prints the records from `from` on (an image when they are no longer retained) until Ctrl-C, or `limit` events. */
export function runMetadataFollow(o: MetadataVerbOptions, opts: { from: number; limit?: number; json: boolean }, out: (l: string) => void): Promise<number> {
  const client = new MetadataClient(o.endpoints, o.timeoutMs, clientCredentials(), clientOptions());
  let seen = 0;
  return new Promise<number>((resolve, failed) => {
    let cancel = (): void => {};
    let done = false;
    const onSigint = (): void => finish(0);
    const finish = (code: number, err: Error | null = null): void => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSigint);
      cancel();
      client.close();
      if (err !== null) failed(err);
      else resolve(code);
    };
    const onEvent = (e: FollowEvent): void => {
      if (opts.json) out(JSON.stringify(e.type === 'record' ? e : { type: 'image', image: e.image.toJSON() }));
      else if (e.type === 'record') out(`${e.offset} (log index ${e.index}): ${describeRecord(e.record)}`);
      else for (const l of describeImage(e.image)) out(`image: ${l}`);
      if (opts.limit !== undefined && ++seen >= opts.limit) finish(0);
    };
    cancel = client.follow(opts.from, onEvent, (err) => {
      if (err !== null && isTransportError(err)) {
        finish(1, err); // one line on stderr from the program (transport-errors.ts)
        return;
      }
      if (err !== null) out(`follow failed: ${err.message}`);
      finish(err === null ? 0 : 1);
    });
    process.once('SIGINT', onSigint);
  });
}

/** Prints the image of the first endpoint that answers. */
export async function runMetadataImage(o: MetadataVerbOptions, opts: { json: boolean; serializable: boolean }, out: (l: string) => void): Promise<number> {
  const client = new MetadataClient(o.endpoints, o.timeoutMs, clientCredentials(), clientOptions());
  try {
    const img = await client.image(opts.serializable);
    if (opts.json) out(JSON.stringify(img.toJSON(), null, 2));
    else for (const l of describeImage(img)) out(l);
    return 0;
  } finally {
    client.close();
  }
}

/** The epoch given, or the broker's current one from the image. */
async function epochOf(client: MetadataClient, id: number, given: string | undefined): Promise<number> {
  if (given !== undefined) return int(given, '--epoch');
  const b = (await client.image()).brokers.get(id);
  if (b === undefined) throw new MetadataRejectedError({ error: 'unknownBroker', message: `broker ${id} is not registered` });
  return b.epoch;
}

/** Parses "partition=broker,broker". */
export function parseAssignment(s: string): { partition: number; replicas: number[] } {
  const m = /^([0-9]+)=([0-9]+(?:,[0-9]+)*)$/.exec(s);
  if (m === null) throw new MetadataUsageError(`an assignment is PARTITION=BROKER,BROKER,... (e.g. 0=1,2,3), not ${JSON.stringify(s)}`);
  return { partition: Number(m[1]), replicas: (m[2] as string).split(',').map(Number) };
}

/** Adds `metadata` and its verbs to the program. */
export function addMetadataCommands(program: Command, out: (line: string) => void = console.log): Command {
  const md = program.command('metadata').description('the metadata log (Kafka KRaft style): write records, follow the log, print the image');
  type Common = { endpoints: string; timeoutMs: string };
  const conn = (o: Common): MetadataVerbOptions => ({ endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: Number(o.timeoutMs) });
  const verb = (name: string, description: string): Command => addClientCredentialOptions(md.command(name).description(description))
    .option('--endpoints <list>', 'metadata API endpoints, tried in order', '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381')
    .option('--timeout-ms <ms>', 'per-request timeout', '5000');
  const write = async (o: Common, build: (c: MetadataClient) => Promise<MetadataRecord> | MetadataRecord): Promise<void> => {
    process.exitCode = await runMetadataWrite(conn(o), build, out);
  };
  const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

  verb('register-broker', 'register a broker (a new registration of an id needs a higher epoch; by default the controller picks the next)')
    .requiredOption('--id <n>', 'broker id').requiredOption('--host <host>').requiredOption('--port <port>')
    .option('--rack <rack>').option('--epoch <n>', 'the registration\'s epoch (default: the current one + 1)').option('--fenced', 'register fenced')
    .action((o: Common & { id: string; host: string; port: string; rack?: string; epoch?: string; fenced?: boolean }) => write(o, () => ({
      type: 'registerBroker', brokerId: int(o.id, '--id'), epoch: o.epoch === undefined ? 0 : int(o.epoch, '--epoch'), host: o.host,
      port: int(o.port, '--port'), rack: o.rack ?? null, fenced: o.fenced === true,
    })));
  for (const [name, type, what] of [
    ['unregister-broker', 'unregisterBroker', 'remove a broker (it must hold no replicas)'],
    ['fence', 'fenceBroker', 'fence a broker: it gets no new replicas'],
    ['unfence', 'unfenceBroker', 'unfence a broker'],
  ] as const) {
    verb(name, what).requiredOption('--id <n>', 'broker id').option('--epoch <n>', 'the broker\'s current epoch (default: read from the image)')
      .action((o: Common & { id: string; epoch?: string }) => write(o, async (c) => {
        const brokerId = int(o.id, '--id');
        return { type, brokerId, epoch: await epochOf(c, brokerId, o.epoch) };
      }));
  }
  verb('create-topic', 'create a topic (its partitions unassigned until `metadata assign`)')
    .argument('<name>').requiredOption('--partitions <n>').option('--config <key=value>', 'a topic config (repeat)', collect)
    .action((name: string, o: Common & { partitions: string; config?: string[] }) => write(o, () => ({
      type: 'createTopic', name, partitions: int(o.partitions, '--partitions'),
      configs: (o.config ?? []).map((kv) => {
        const i = kv.indexOf('=');
        if (i <= 0) throw new MetadataUsageError(`--config takes key=value, not ${JSON.stringify(kv)}`);
        return { key: kv.slice(0, i), value: kv.slice(i + 1) };
      }),
    })));
  verb('delete-topic', 'delete a topic').argument('<name>')
    .action((name: string, o: Common) => write(o, () => ({ type: 'deleteTopic', name })));
  verb('assign', 'assign partitions of a topic to brokers: PARTITION=BROKER,BROKER,... (first = preferred leader)')
    .argument('<topic>').argument('<assignments...>')
    .action((topic: string, assignments: string[], o: Common) => write(o, () => ({ type: 'assignPartitions', topic, assignments: assignments.map(parseAssignment) })));
  verb('set-config', 'set (or with --delete remove) a config key of a topic, a broker, or the cluster')
    .argument('<key>').argument('[value]').option('--topic <name>').option('--broker <id>').option('--cluster', 'the cluster-wide broker default')
    .option('--delete', 'remove the key')
    .action((key: string, value: string | undefined, o: Common & { topic?: string; broker?: string; cluster?: boolean; delete?: boolean }) => write(o, () => {
      const chosen = [o.topic !== undefined, o.broker !== undefined, o.cluster === true].filter((x) => x).length;
      if (chosen !== 1) throw new MetadataUsageError('give exactly one of --topic, --broker, --cluster');
      if ((value === undefined) !== (o.delete === true)) throw new MetadataUsageError('give a value, or --delete (not both)');
      const resource: ConfigResource = o.topic !== undefined ? { type: 'topic', name: o.topic }
        : o.broker !== undefined ? { type: 'broker', brokerId: int(o.broker, '--broker') } : { type: 'cluster' };
      return { type: 'setConfig', resource, key, value: value ?? null };
    }));
  verb('follow', 'print the committed records from an offset on, then each new one, until Ctrl-C')
    .option('--from <offset>', 'first offset (1 = the beginning; older than retained: the image first)', '1')
    .option('--limit <n>', 'stop after n events').option('--json', 'one JSON object per line')
    .action(async (o: Common & { from: string; limit?: string; json?: boolean }) => {
      process.exitCode = await runMetadataFollow(conn(o), {
        from: int(o.from, '--from'), json: o.json === true, ...(o.limit !== undefined ? { limit: int(o.limit, '--limit') } : {}),
      }, out);
    });
  verb('image', 'print the metadata image (brokers, topics, assignments, configs)')
    .option('--json', 'as JSON').option('--serializable', 'this node\'s applied image, without a read barrier')
    .action(async (o: Common & { json?: boolean; serializable?: boolean }) => {
      process.exitCode = await runMetadataImage(conn(o), { json: o.json === true, serializable: o.serializable === true }, out);
    });
  return md;
}
