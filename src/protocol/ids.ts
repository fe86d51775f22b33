// Identifiers shared by every layer. NodeId is branded so that a node id cannot
// be confused with any other string. Terms and log indexes stay plain numbers:
// they are counted and compared on every hot path, and a brand there would put
// a cast on every `+ 1` (a departure from DESIGN.md, see the commit message).

/** The id of a node (voter or observer); unique within a cluster. */
export type NodeId = string & { readonly __brand: 'NodeId' };

/** A Raft term (KRaft: epoch). 0 means "before any election". */
export type Term = number;

/**
 * A position in the log. Entries are numbered from 1; index 0 is the empty
 * prefix, whose term is 0.
 */
export type LogIndex = number;

/** Brands a string as a node id. */
export function nodeId(id: string): NodeId {
  return id as NodeId;
}
