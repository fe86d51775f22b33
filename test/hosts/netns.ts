// The network of the multi-host tests: one Linux network namespace per node
// (qlh-n1 .. qlh-nN, address 10.77.0.i/24 on its eth0), each joined by a
// veth pair (qlh-v<i> on the host side) to a bridge in the root namespace
// (qlh-br0, 10.77.0.254), where the test process and its clients live.
// Faults are nftables tables inside the node namespaces (they vanish with
// them: nothing is added to the root namespace's ruleset) and tc qdiscs on
// the nodes' eth0. Every name starts with PREFIX, so that a crashed run's
// leftovers can be found and removed. All commands are synchronous, so
// that cleanup also works from an 'exit' handler.

import { execFileSync, spawnSync } from 'node:child_process';
import { nftScript, type DropRule } from './nemesis.js';

/** Every namespace and link this test creates starts with this. */
export const PREFIX = 'qlh-';
export const BRIDGE = `${PREFIX}br0`;
export const BRIDGE_ADDRESS = '10.77.0.254';
export const NFT_TABLE = 'qlh';

/** The namespace of node index i (0-based). */
export const nsName = (i: number): string => `${PREFIX}n${i + 1}`;
/** The host-side veth of node index i. */
export const vethName = (i: number): string => `${PREFIX}v${i + 1}`;
/** Node index i's address. */
export const nodeAddress = (i: number): string => `10.77.0.${i + 1}`;

/** The test cannot run here (not root, no network namespaces, no nftables): says why. */
export class HostsUnavailableError extends Error {
  override readonly name = 'HostsUnavailableError';
}

/** A setup or fault command failed. */
export class HostsCommandError extends Error {
  override readonly name = 'HostsCommandError';
  constructor(readonly command: string, readonly stderr: string, options?: ErrorOptions) {
    super(`${command}: ${stderr.trim() || 'failed'}`, options);
  }
}

/** Runs a command and returns its standard output; throws {@link HostsCommandError} on failure. */
export function sh(cmd: string, args: readonly string[], input?: string): string {
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8', timeout: 15_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new HostsCommandError([cmd, ...args].join(' '), r.error?.message ?? r.stderr ?? '', r.error !== undefined ? { cause: r.error } : undefined);
  }
  return r.stdout;
}

/** Like {@link sh}, but returns whether it worked. */
export function trySh(cmd: string, args: readonly string[], input?: string): boolean {
  try {
    sh(cmd, args, input);
    return true;
  } catch {
    return false;
  }
}

/** What the kernel offers, found by {@link preflight}. */
export interface HostCapabilities {
  /** tc's netem qdisc (delay, jitter) is available. */
  readonly netem: boolean;
  /** tc's htb qdisc (rate shaping) is available. */
  readonly htb: boolean;
}

/**
 * Checks that this process can build the network: root, iproute2, nft, a
 * network namespace, an nftables table with numgen in it, and which tc
 * qdiscs the kernel has. Throws {@link HostsUnavailableError} saying why not.
 */
export function preflight(): HostCapabilities {
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) {
    throw new HostsUnavailableError(`needs root (running as uid ${uid}): network namespaces, veth links, nftables and tc need CAP_NET_ADMIN; run it as root (CI does)`);
  }
  for (const [cmd, args, pkg] of [['ip', ['-V'], 'iproute2'], ['nft', ['--version'], 'nftables'], ['tc', ['-V'], 'iproute2']] as const) {
    if (!trySh(cmd, args)) throw new HostsUnavailableError(`${cmd} is missing: install ${pkg} (bash scripts/hosts-deps.sh does)`);
  }
  const probe = `${PREFIX}probe`;
  trySh('ip', ['netns', 'del', probe]);
  try {
    sh('ip', ['netns', 'add', probe]);
  } catch (e) {
    throw new HostsUnavailableError(`cannot create a network namespace (ip netns add): ${(e as HostsCommandError).stderr.trim()}`, { cause: e });
  }
  try {
    sh('ip', ['-n', probe, 'link', 'set', 'lo', 'up']);
    try {
      sh('ip', ['netns', 'exec', probe, 'nft', '-f', '-'], nftScript(NFT_TABLE, [{ from: [1], lossPercent: 10 }], () => '10.77.0.9'));
    } catch (e) {
      throw new HostsUnavailableError(`nftables does not work in a namespace here (a table with numgen was refused): ${(e as HostsCommandError).stderr.trim()}`, { cause: e });
    }
    const qdisc = (kind: string[]): boolean => {
      const ok = trySh('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', ...kind]);
      trySh('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
      return ok;
    };
    return { netem: qdisc(['netem', 'delay', '1ms']), htb: qdisc(['handle', '1:', 'htb', 'default', '10']) };
  } finally {
    trySh('ip', ['netns', 'del', probe]);
  }
}

/** The names of this test's namespaces and links that exist now. */
export function leftovers(): { namespaces: string[]; links: string[] } {
  const namespaces = sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((x) => x.startsWith(PREFIX));
  const links = sh('ip', ['-o', 'link', 'show']).split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '').filter((x) => x.startsWith(PREFIX));
  return { namespaces, links };
}

/**
 * Removes every namespace and link whose name starts with PREFIX, first
 * killing (SIGKILL) every process still inside those namespaces. Returns what
 * is still left (empty when all went), never throws.
 */
export function removeAll(): string[] {
  try {
    const { namespaces } = leftovers();
    for (const ns of namespaces) {
      let pids: string[] = [];
      try {
        pids = sh('ip', ['netns', 'pids', ns]).split(/\s+/).filter((x) => /^\d+$/.test(x));
      } catch { /* the namespace may be half gone */ }
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch { /* already gone */ }
      }
      trySh('ip', ['netns', 'del', ns]);
    }
    for (const link of leftovers().links) trySh('ip', ['link', 'del', link]);
    // A namespace whose last process is still exiting takes its veth with it a moment later.
    for (let i = 0; i < 50; i++) {
      const left = leftovers();
      if (left.namespaces.length + left.links.length === 0) return [];
      for (const link of left.links) trySh('ip', ['link', 'del', link]);
      for (const ns of left.namespaces) trySh('ip', ['netns', 'del', ns]);
      execFileSync('sleep', ['0.1']);
    }
    const left = leftovers();
    return [...left.namespaces.map((x) => `netns ${x}`), ...left.links.map((x) => `link ${x}`)];
  } catch (e) {
    return [`cleanup failed: ${(e as Error).message}`];
  }
}

/** Builds the bridge and n node namespaces with their veth pairs and addresses. */
export function createNetwork(n: number): void {
  const clash = sh('ip', ['-o', '-4', 'addr', 'show']).split('\n')
    .filter((l) => l.includes(' 10.77.0.') && !(/^\d+:\s+(\S+)/.exec(l)?.[1] ?? '').startsWith(PREFIX));
  if (clash.length > 0) throw new HostsUnavailableError(`10.77.0.0/24 is already used on this machine: ${clash[0]?.trim()}`);
  sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${BRIDGE_ADDRESS}/24`, 'dev', BRIDGE]);
  sh('ip', ['link', 'set', BRIDGE, 'up']);
  for (let i = 0; i < n; i++) {
    const ns = nsName(i);
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', vethName(i), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', vethName(i), 'master', BRIDGE]);
    sh('ip', ['link', 'set', vethName(i), 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${nodeAddress(i)}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
}

/** Replaces node i's drop rules (an empty list removes its table). */
export function setDropRules(i: number, rules: readonly DropRule[]): void {
  sh('ip', ['netns', 'exec', nsName(i), 'nft', '-f', '-'], nftScript(NFT_TABLE, rules, nodeAddress));
}

/** How a slow network is made: netem's delay when the kernel has it, else HTB rate shaping. */
export type Shaping = { readonly kind: 'netem'; readonly delayMs: number; readonly jitterMs: number } | { readonly kind: 'htb'; readonly rateKbit: number };

/** Shapes node i's outgoing traffic (its eth0 egress). */
export function shape(i: number, s: Shaping): void {
  const tc = (...args: string[]): string => sh('ip', ['netns', 'exec', nsName(i), 'tc', ...args]);
  switch (s.kind) {
    case 'netem':
      tc('qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', 'delay', `${s.delayMs}ms`, `${s.jitterMs}ms`);
      break;
    case 'htb':
      tc('qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '10');
      tc('class', 'replace', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', `${s.rateKbit}kbit`, 'ceil', `${s.rateKbit}kbit`, 'burst', '1600');
      break;
  }
}

/** Removes node i's shaping (back to the default qdisc). */
export function unshape(i: number): void {
  trySh('ip', ['netns', 'exec', nsName(i), 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
}
