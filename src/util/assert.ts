// Assertions used on both sides of every boundary. A failed assertion is a bug
// in quorumlog, never a reaction to bad input: input from outside is validated
// in src/codec and rejected as data, not with an assertion.

/** Thrown when an internal invariant does not hold. Always a bug. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Throws {@link AssertionError} with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === 'string' ? message : message());
  }
}

/** Marks the end of an exhaustive `switch`; the compiler proves it unreachable. */
export function assertNever(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
