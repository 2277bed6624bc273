import type { Sender } from 'rhea';
import type { EmulatorError } from '../errors';
import type { PartitionLog } from '../partition-log';
import type { Owner } from './ownership';

const readBatch = 64;

/**
 * Streams a partition to one client receiver, from its start position on, as the log grows. It sends only
 * while the client has granted credit (rhea's `sendable`), so a slow consumer is never flooded.
 */
export class ConsumerLink implements Owner {
  private next: number;
  private closed = false;
  /** Deliveries handed to rhea on this link; rhea's delivery_count says how many it has written. */
  private queued = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly sender: Sender,
    private readonly log: PartitionLog,
    start: number,
    readonly epoch: number | undefined,
    private readonly onEnd: (link: ConsumerLink) => void,
  ) {
    this.next = start;
    this.unsubscribe = log.onAppend(() => this.pump());
  }

  get name(): string {
    return this.sender.name;
  }

  pump(): void {
    if (this.closed) return;
    while (this.next < this.log.length) {
      const room = this.room();
      if (room <= 0) return;
      const events = this.log.read(this.next, Math.min(readBatch, room, this.log.length - this.next));
      for (const event of events) {
        this.sender.send(event, undefined, 0);
        this.queued++;
        this.next++;
      }
    }
    if ((this.sender as unknown as { _draining?: boolean })._draining) {
      // Nothing more to send: let a draining client know its remaining credit is void.
      this.sender.set_drained(true);
    }
  }

  /**
   * How many more deliveries the client's credit allows, and the session's window of unsettled deliveries
   * can take. rhea lowers `credit` only when it writes a transfer, so deliveries queued in this turn are
   * counted here; queuing past credit would also block the session's other links (replies on $cbs share it)
   * behind this one. Past the window, rhea throws and the connection drops (the client then reconnects and
   * re-reads): rhea says `sendable` again once settlements free the window.
   */
  private room(): number {
    const link = this.sender as unknown as { credit: number; delivery_count: number; session: { outgoing: { available(): number } } };
    return Math.min(link.credit - (this.queued - link.delivery_count), link.session.outgoing.available());
  }

  evict(error: EmulatorError): void {
    this.end();
    this.sender.close(error.toAmqp());
  }

  /** Stops streaming; the link itself is closed by whoever ended it. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.onEnd(this);
  }
}
