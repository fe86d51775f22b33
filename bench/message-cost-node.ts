// What the two primitives of a replicated write cost Node (quorumlog's
// runtime) on this machine, the same measurements as
// bench/message-cost-go/main.go makes for Go: a 100-byte message between two
// processes over loopback TCP (a socket's 'data' event, one write back), and
// a 4 KiB append made durable the way the log does it (a synchronous write,
// then fdatasync on libuv's pool, src/storage/fs.ts). bench/message-cost.ts
// runs both and writes the report.
//
//   node dist/bench/message-cost-node.js serve --n N --warmup W           # prints its port, then its CPU
//   node dist/bench/message-cost-node.js ping --port P --n N --warmup W
//   node dist/bench/message-cost-node.js disk --file F --n N --warmup W
//
// Each prints one JSON line: {"cpuUs":…,"wallUs":…,"n":…}; CPU is
// process.cpuUsage(), every thread of the process.

import { closeSync, fdatasync, openSync, rmSync, writeSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const MESSAGE_BYTES = 100;

interface Mark {
  readonly cpu: NodeJS.CpuUsage;
  readonly t: bigint;
}

function mark(): Mark {
  return { cpu: process.cpuUsage(), t: process.hrtime.bigint() };
}

function report(m: Mark, n: number): void {
  const c = process.cpuUsage(m.cpu);
  console.log(JSON.stringify({ cpuUs: c.user + c.system, wallUs: Number(process.hrtime.bigint() - m.t) / 1e3, n }));
}

/**
 * Calls `onMessage` once per whole 100-byte message on `s`. Only one message
 * is ever in flight, but TCP may still split one across reads.
 */
function onMessages(s: Socket, onMessage: () => void): void {
  let have = 0;
  s.on('data', (d: Buffer) => {
    have += d.length;
    while (have >= MESSAGE_BYTES) {
      have -= MESSAGE_BYTES;
      onMessage();
    }
  });
}

function serve(n: number, warmup: number): void {
  const reply = Buffer.alloc(MESSAGE_BYTES, 1);
  const server = createServer((s) => {
    s.setNoDelay(true);
    let seen = 0;
    let m: Mark | null = null;
    onMessages(s, () => {
      if (seen === warmup) m = mark();
      seen++;
      s.write(reply);
      if (seen === warmup + n) {
        report(m as Mark, n);
        s.end();
        server.close();
      }
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    if (a === null || typeof a === 'string') throw new Error('no TCP address');
    console.log(a.port);
  });
}

function ping(port: number, n: number, warmup: number): void {
  const msg = Buffer.alloc(MESSAGE_BYTES, 1);
  const s = connect(port, '127.0.0.1', () => {
    s.setNoDelay(true);
    s.write(msg);
  });
  let done = 0;
  let m: Mark | null = null;
  onMessages(s, () => {
    done++;
    if (done === warmup) m = mark();
    if (done === warmup + n) {
      report(m as Mark, n);
      s.end();
      return;
    }
    s.write(msg);
  });
}

function disk(file: string, n: number, warmup: number): void {
  const fd = openSync(file, 'w+');
  const rec = Buffer.alloc(4096, 1);
  let i = 0;
  let m: Mark | null = null;
  const next = (err: Error | null): void => {
    if (err !== null) throw err;
    if (i === warmup) m = mark();
    if (i === warmup + n) {
      report(m as Mark, n);
      closeSync(fd);
      rmSync(file, { force: true });
      return;
    }
    writeSync(fd, rec, 0, rec.length, i * rec.length);
    i++;
    fdatasync(fd, next);
  };
  next(null);
}

function main(): void {
  const [role, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: { port: { type: 'string', default: '0' }, n: { type: 'string', default: '20000' }, warmup: { type: 'string', default: '2000' }, file: { type: 'string', default: '' } },
  });
  const n = Number(values.n);
  const warmup = Number(values.warmup);
  if (!(n >= 1) || !(warmup >= 1)) throw new Error('--n and --warmup must be at least 1');
  if (role === 'serve') serve(n, warmup);
  else if (role === 'ping') ping(Number(values.port), n, warmup);
  else if (role === 'disk') {
    if (values.file === '') throw new Error('disk needs --file');
    disk(values.file, n, warmup);
  } else throw new Error(`unknown role ${String(role)} (serve, ping, disk)`);
}

main();
