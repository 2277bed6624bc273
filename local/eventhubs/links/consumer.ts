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
    while (this.next < this.log.length && this.sender.sendable()) {
      const events = this.log.read(this.next, Math.min(readBatch, this.log.length - this.next));
      for (const event of events) {
        if (!this.sender.sendable()) return;
        this.sender.send(event, undefined, 0);
        this.next++;
      }
    }
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
