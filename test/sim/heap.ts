// A binary min-heap of simulator events ordered by (time, seq): events at the
// same virtual time run in the order they were scheduled, so a seed replays
// exactly. Times and sequence numbers live in plain number arrays (unboxed
// doubles in V8), which keeps the comparisons cheap on the simulator's
// hottest path.

export class EventHeap<E> {
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  private readonly items: E[] = [];

  get size(): number {
    return this.items.length;
  }

  push(time: number, seq: number, event: E): void {
    const { times, seqs, items } = this;
    let i = items.length;
    times.push(time);
    seqs.push(seq);
    items.push(event);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = times[p] as number;
      if (pt < time || (pt === time && (seqs[p] as number) < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[p] as number;
      items[i] = items[p] as E;
      i = p;
    }
    times[i] = time;
    seqs[i] = seq;
    items[i] = event;
  }

  /** The time of the earliest event (undefined when empty). */
  peekTime(): number | undefined {
    return this.times[0];
  }

  /** Removes and returns the earliest event; its time is what peekTime() said. */
  pop(): E | undefined {
    const { times, seqs, items } = this;
    const n = items.length;
    if (n === 0) return undefined;
    const top = items[0];
    const lastTime = times.pop() as number;
    const lastSeq = seqs.pop() as number;
    const lastItem = items.pop() as E;
    const size = n - 1;
    if (size > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        let c = l;
        const r = l + 1;
        if (r < size) {
          const lt = times[l] as number;
          const rt = times[r] as number;
          if (rt < lt || (rt === lt && (seqs[r] as number) < (seqs[l] as number))) c = r;
        }
        const ct = times[c] as number;
        if (lastTime < ct || (lastTime === ct && lastSeq < (seqs[c] as number))) break;
        times[i] = ct;
        seqs[i] = seqs[c] as number;
        items[i] = items[c] as E;
        i = c;
      }
      times[i] = lastTime;
      seqs[i] = lastSeq;
      items[i] = lastItem;
    }
    return top;
  }
}
