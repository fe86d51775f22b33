// The etcd3 npm client (which loads etcd's own protos) against our server on
// a LocalKvBackend: KV operations, transactions, range options and watches.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { startTestServer, waitFor, type TestServer } from './test-util.js';

for (const protocolWorkers of [0, 1]) describe(`etcd API server with the etcd3 client${protocolWorkers > 0 ? ' (through a protocol worker process)' : ''}`, () => {
  let srv: TestServer;
  let client: Etcd3;

  before(async () => {
    srv = await startTestServer({ protocolWorkers });
    client = new Etcd3({ hosts: srv.address });
  });

  after(async () => {
    client.close();
    await srv.close();
  });

  it('puts, gets, deletes', async () => {
    await client.put('a/1').value('one');
    assert.equal(await client.get('a/1').string(), 'one');
    await client.put('a/1').value('uno');
    assert.equal(await client.get('a/1').string(), 'uno');
    const res = await client.delete().key('a/1').getPrevious();
    assert.equal(res.length, 1);
    assert.equal(res[0]?.value.toString(), 'uno');
    assert.equal(await client.get('a/1').string(), null);
  });

  it('getAll with prefix, limit, sort, count and keys', async () => {
    await client.put('p/b').value('2');
    await client.put('p/a').value('3');
    await client.put('p/c').value('1');
    await client.put('q/x').value('0');
    assert.deepEqual(await client.getAll().prefix('p/').strings(), { 'p/a': '3', 'p/b': '2', 'p/c': '1' });
    assert.deepEqual(await client.getAll().prefix('p/').keys(), ['p/a', 'p/b', 'p/c']);
    assert.equal(await client.getAll().prefix('p/').count(), 3);
    assert.deepEqual(await client.getAll().prefix('p/').sort('Key', 'Descend').keys(), ['p/c', 'p/b', 'p/a']);
    assert.deepEqual(await client.getAll().prefix('p/').sort('Value', 'Ascend').keys(), ['p/c', 'p/b', 'p/a']);
    const limited = await client.getAll().prefix('p/').limit(2).exec();
    assert.equal(limited.kvs.length, 2);
    assert.equal(limited.more, true);
    assert.equal(limited.count, '3');
    assert.equal(await client.delete().prefix('p/').then((r) => r.deleted), '3');
  });

  it('txn: if/then/else on value, version, create and mod revision', async () => {
    const put = await client.put('t/k').value('v1').exec();
    const rev = put.header.revision;
    const ok = await client.if('t/k', 'Value', '==', 'v1').then(client.put('t/k').value('v2')).else(client.get('t/k')).commit();
    assert.equal(ok.succeeded, true);
    const no = await client.if('t/k', 'Value', '==', 'v1').then(client.put('t/k').value('v3')).else(client.get('t/k')).commit();
    assert.equal(no.succeeded, false);
    assert.equal(no.responses[0]?.response_range?.kvs[0]?.value.toString(), 'v2');
    const byVersion = await client.if('t/k', 'Version', '==', 2).then(client.put('t/k').value('v3')).commit();
    assert.equal(byVersion.succeeded, true);
    const byCreate = await client.if('t/k', 'Create', '==', rev).then(client.get('t/k')).commit();
    assert.equal(byCreate.succeeded, true, 'create revision is the first put');
    const byMod = await client.if('t/k', 'Mod', '>', rev).then(client.delete().key('t/k')).commit();
    assert.equal(byMod.succeeded, true);
    assert.equal(await client.get('t/k').string(), null);
    const missing = await client.if('t/k', 'Version', '==', 0).then(client.put('t/k').value('again')).commit();
    assert.equal(missing.succeeded, true, 'a missing key has version 0');
    assert.equal(await client.get('t/k').string(), 'again');
  });

  it('read-only txn is answered without a write', async () => {
    await client.put('ro/k').value('x');
    const before = (await client.get('ro/k').exec()).header.revision;
    const logIndex = srv.backend.status().raftIndex;
    const res = await client.if('ro/k', 'Value', '==', 'x').then(client.get('ro/k')).else(client.get('ro/none')).commit();
    assert.equal(srv.backend.status().raftIndex, logIndex, 'nothing went through the log');
    assert.equal(res.succeeded, true);
    assert.equal(res.header.revision, before);
    assert.equal(res.responses[0]?.response_range?.kvs[0]?.value.toString(), 'x');
  });

  it('watches a key and a prefix: put and delete events, then cancel', async () => {
    const events: string[] = [];
    const onKey = await client.watch().key('w/k').create();
    const onPrefix = await client.watch().prefix('w/').create();
    onKey.on('put', (kv: IKeyValue) => events.push(`key put ${kv.key.toString()}=${kv.value.toString()}`));
    onKey.on('delete', (kv: IKeyValue) => events.push(`key del ${kv.key.toString()}`));
    onPrefix.on('put', (kv: IKeyValue) => events.push(`prefix put ${kv.key.toString()}`));
    onPrefix.on('delete', (kv: IKeyValue) => events.push(`prefix del ${kv.key.toString()}`));
    await client.put('w/k').value('1');
    await client.put('w/other').value('2');
    await client.delete().key('w/k');
    await waitFor(() => events.length >= 5, 5000, 'watch events');
    assert.deepEqual(events.filter((e) => e.startsWith('key')), ['key put w/k=1', 'key del w/k']);
    assert.deepEqual(events.filter((e) => e.startsWith('prefix')), ['prefix put w/k', 'prefix put w/other', 'prefix del w/k']);
    await onKey.cancel();
    await onPrefix.cancel();
    await client.put('w/k').value('after cancel');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(events.length, 5, 'no events after cancel');
  });

  it('watches from an old revision (history, then live)', async () => {
    const first = await client.put('h/k').value('old1').exec();
    await client.put('h/k').value('old2');
    const seen: string[] = [];
    const w: Watcher = await client.watch().key('h/k').startRevision(String(first.header.revision)).create();
    w.on('put', (kv: IKeyValue) => seen.push(kv.value.toString()));
    await waitFor(() => seen.length >= 2, 5000, 'history events');
    await client.put('h/k').value('new');
    await waitFor(() => seen.length >= 3, 5000, 'live event');
    assert.deepEqual(seen, ['old1', 'old2', 'new']);
    await w.cancel();
  });
});
