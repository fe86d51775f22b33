// Service registration and discovery on quorumlog's etcd API with the etcd3
// npm client, as Memphis-style brokers announce themselves to each other.
//
// Each instance of a service puts its address under services/<name>/<id>
// with a lease, and keeps the lease alive while it runs. Discovery reads the
// prefix once and then follows a watch from the next revision, so it never
// misses a join or a leave. An instance that stops cleanly revokes its lease
// (its entry goes at once); one that dies stops its keep-alives, and its entry
// goes when the lease expires, decided by the cluster's leader.
//
// Run against a local cluster (`npm run cluster` in another terminal):
//   npm run build && node dist/examples/service-registry.js
// Endpoints: QUORUMLOG_ENDPOINTS=127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381 (the default).
// It exits 0 once it has shown a join, a crash (expiry) and a clean leave.

import { Etcd3, type IKeyValue, type Lease } from 'etcd3';

const PREFIX = 'services/api/';
const TTL_SECONDS = 3;

/** One running instance of the service: its lease and its registry entry. */
interface Instance {
  readonly id: string;
  readonly lease: Lease;
}

/** Registers an instance: a lease kept alive by the client, and the entry attached to it. */
async function register(client: Etcd3, id: string, address: string): Promise<Instance> {
  const lease = client.lease(TTL_SECONDS);
  lease.on('lost', (err) => console.log(`[${id}] lease lost: ${err.message}`));
  await lease.put(PREFIX + id).value(JSON.stringify({ address }));
  console.log(`[${id}] registered at ${address} with lease ${await lease.grant()} (TTL ${TTL_SECONDS} s)`);
  return { id, lease };
}

/** The instances currently registered, following the registry with a watch. */
class Discovery {
  readonly instances = new Map<string, string>();
  private readonly waiters: { until: () => boolean; resolve: () => void }[] = [];

  static async start(client: Etcd3): Promise<{ discovery: Discovery; stop: () => Promise<void> }> {
    const d = new Discovery();
    const now = await client.getAll().prefix(PREFIX).exec();
    for (const kv of now.kvs) d.instances.set(kv.key.toString().slice(PREFIX.length), kv.value.toString());
    const watcher = await client.watch().prefix(PREFIX).startRevision(String(Number(now.header.revision) + 1)).create();
    watcher.on('put', (kv: IKeyValue) => d.change('joined', kv, kv.value.toString()));
    watcher.on('delete', (kv: IKeyValue) => d.change('left', kv, null));
    return { discovery: d, stop: () => watcher.cancel() };
  }

  private change(what: string, kv: IKeyValue, value: string | null): void {
    const id = kv.key.toString().slice(PREFIX.length);
    if (value === null) this.instances.delete(id);
    else this.instances.set(id, value);
    console.log(`[discovery] ${id} ${what} (revision ${kv.mod_revision}); now: ${[...this.instances.keys()].sort().join(', ') || '(none)'}`);
    for (const w of [...this.waiters]) {
      if (!w.until()) continue;
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  /** Resolves once `until()` holds; rejects after `timeoutMs`. */
  waitFor(until: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (until()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({ until, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }
}

async function main(): Promise<void> {
  const hosts = (process.env['QUORUMLOG_ENDPOINTS'] ?? '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381').split(',');
  // Each instance has its own client (its own process, in real life); discovery has another.
  const clients = [new Etcd3({ hosts }), new Etcd3({ hosts }), new Etcd3({ hosts })];
  const [forDiscovery, forA, forB] = clients as [Etcd3, Etcd3, Etcd3];
  try {
    await forDiscovery.delete().prefix(PREFIX); // a clean slate for the demonstration
    const { discovery, stop } = await Discovery.start(forDiscovery);

    const a = await register(forA, 'api-1', '10.0.0.1:8080');
    const b = await register(forB, 'api-2', '10.0.0.2:8080');
    await discovery.waitFor(() => discovery.instances.size === 2, 10_000, 'both instances to be discovered');

    // api-2 dies: nothing keeps its lease alive any more. The cluster deletes its entry once the TTL has passed.
    const crashedAt = Date.now();
    b.lease.release();
    console.log('[api-2] crashed (no more keep-alives)');
    await discovery.waitFor(() => !discovery.instances.has('api-2'), (TTL_SECONDS + 10) * 1000, 'api-2 to expire');
    console.log(`[discovery] api-2 expired ${((Date.now() - crashedAt) / 1000).toFixed(1)} s after its crash (TTL ${TTL_SECONDS} s)`);

    // api-1 stops cleanly: revoking its lease removes its entry at once.
    await a.lease.revoke();
    await discovery.waitFor(() => discovery.instances.size === 0, 10_000, 'api-1 to leave');
    console.log('service-registry: done');
    await stop();
  } finally {
    for (const c of clients) c.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('service-registry failed:', err);
    process.exit(1);
  },
);
