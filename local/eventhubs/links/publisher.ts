import type { Delivery, EventContext } from 'rhea';
import { unpackTransfer } from '../codec';
import { EmulatorError, errors } from '../errors';
import type { Namespace } from '../namespace';

/** Where a publisher's link points: the hub, or one partition of it. */
export interface PublishTarget {
  hub: string;
  partitionId?: string;
}

/** Receives sends on one link: checks the size, appends to the partition, then settles (accepted or rejected). */
export function handlePublish(context: EventContext, target: PublishTarget, namespace: Namespace, maxMessageSize: number): void {
  const delivery = context.delivery as Delivery;
  try {
    const published = unpackTransfer(context as { message?: unknown; format?: number });
    if (published.size > maxMessageSize) throw errors.messageTooLarge(published.size, maxMessageSize);
    namespace.publish(target.hub, target.partitionId, published);
    delivery.accept();
  } catch (error) {
    const failure =
      error instanceof EmulatorError
        ? error.toAmqp()
        : { condition: 'amqp:internal-error', description: error instanceof Error ? error.message : String(error) };
    delivery.reject(failure);
  }
}
