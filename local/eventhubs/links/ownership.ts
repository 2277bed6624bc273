import { errors, type EmulatorError } from '../errors';

/** A receiving link that competes for a partition of a consumer group. */
export interface Owner {
  readonly name: string;
  /** The owner level (`com.microsoft:epoch`); undefined for a non-exclusive receiver. */
  readonly epoch: number | undefined;
  evict(error: EmulatorError): void;
}

/** The service allows this many non-epoch receivers per partition and consumer group. */
export const maxReceiversPerPartition = 5;

/**
 * Who reads each partition of each consumer group. A receiver with an epoch takes the partition from every
 * receiver with a lower or equal one (and from non-epoch receivers); a lower epoch is refused.
 */
export class Ownership {
  private readonly owners = new Map<string, Set<Owner>>();

  /** Registers `candidate`, evicting whom it displaces; throws the refusal when it may not read. */
  claim(key: string, candidate: Owner): void {
    const current = this.owners.get(key) ?? new Set<Owner>();
    const epochs = [...current].map((o) => o.epoch).filter((e): e is number => e !== undefined);
    const highest = epochs.length ? Math.max(...epochs) : undefined;
    if (candidate.epoch === undefined) {
      if (highest !== undefined) throw errors.refusedLowerEpoch(candidate.name, undefined, highest);
      if (current.size >= maxReceiversPerPartition) throw errors.tooManyReceivers(maxReceiversPerPartition);
    } else {
      if (highest !== undefined && highest > candidate.epoch) {
        throw errors.refusedLowerEpoch(candidate.name, candidate.epoch, highest);
      }
      for (const owner of current) {
        current.delete(owner);
        owner.evict(errors.stolenByNewer(owner.name, candidate.epoch));
      }
    }
    current.add(candidate);
    this.owners.set(key, current);
  }

  release(key: string, owner: Owner): void {
    const current = this.owners.get(key);
    if (!current) return;
    current.delete(owner);
    if (current.size === 0) this.owners.delete(key);
  }
}
