// A pluggable application workload for the simulator: a state machine each
// node runs beside the digest machine (fed every applied entry, saved in
// every snapshot after the digest machine's bytes, restored with it), and
// the proposals the clients make. Without one, the simulator proposes
// strings and runs the digest machine alone, exactly as before.

import type { Entry } from '../../src/protocol/entry.js';
import type { NodeId } from '../../src/protocol/ids.js';
import type { Prng } from '../../src/util/prng.js';

/** One node's application state machine. apply() may throw a Violation. */
export interface SimApp {
  apply(e: Entry): void;
  snapshot(): Uint8Array;
}

/** One run's workload (created once per run by SimOptions.workload). */
export interface SimWorkload {
  /** A node's app: fresh (snapshot null) or restored from the bytes its last snapshot saved. */
  create(node: NodeId, snapshot: Uint8Array | null): SimApp;
  /** The next proposal's bytes; `leader` is the app of the node that leads now, if any. */
  nextProposal(rng: Prng, leader: SimApp | null): Uint8Array;
}
