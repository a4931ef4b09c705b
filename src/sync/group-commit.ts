import { ChangeAck, ErrorCode } from '@sync/protocol';
import { toFailureAck } from '../common/ack';

/** Groups of single changes applied at once (group commit): while one is in flight the next fills. */
const GROUPS_IN_FLIGHT = 2;

/**
 * The queue of group commit: single changes of every socket that arrive while earlier ones are
 * being applied go through the batch path together (one lease, one load, one feed insert, one bulk
 * of document writes for all), each answered on its own ack. An idle server starts a group at once:
 * once the messages read in the same turn of the event loop have joined (a `setImmediate`, no timer),
 * so that a burst (the clients whose acks just went out sending their next change) makes one group
 * instead of a group of one, another of one, and the rest waiting for them.
 */
export class GroupCommit<I> {
  private readonly queue: { item: I; resolve: (ack: ChangeAck) => void }[] = [];
  private groupsInFlight = 0;
  private drainScheduled = false;

  constructor(
    /** The largest group (MAX_BATCH_SIZE), read at each group. */
    private readonly maxGroupSize: () => number,
    /** Applies items in order, each on its own merits; one ack per item. */
    private readonly apply: (items: I[], kind: 'single' | 'group') => Promise<ChangeAck[]>,
  ) {}

  push(item: I): Promise<ChangeAck> {
    return new Promise((resolve) => {
      this.queue.push({ item, resolve });
      this.scheduleDrain();
    });
  }

  /** Drains after the I/O callbacks of this turn of the event loop: what arrived with this change joins its group. */
  private scheduleDrain(): void {
    if (this.drainScheduled || this.groupsInFlight >= GROUPS_IN_FLIGHT) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /** Starts groups while fewer than GROUPS_IN_FLIGHT are being applied (at once when idle). */
  private drain(): void {
    while (this.groupsInFlight < GROUPS_IN_FLIGHT && this.queue.length) {
      const group = this.queue.splice(0, this.maxGroupSize());
      this.groupsInFlight++;
      void this.apply(
        group.map((g) => g.item),
        group.length === 1 ? 'single' : 'group',
      )
        .then(async (acks) => {
          // an unexpected error fails a whole group: each of its changes is tried again on its own, so
          // that one sender's change that breaks something never costs the others theirs
          if (group.length > 1 && acks.some((a) => !a.success && a.code === ErrorCode.INTERNAL))
            acks = await Promise.all(group.map(async (g) => (await this.apply([g.item], 'single'))[0]));
          group.forEach((g, i) => g.resolve(acks[i]));
        })
        .catch((e) => {
          const ack = toFailureAck(e, 'apply') as ChangeAck;
          for (const g of group) g.resolve(ack);
        })
        .finally(() => {
          this.groupsInFlight--;
          this.drain();
        });
    }
  }
}
