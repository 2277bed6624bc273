import type { Server, Socket } from 'node:net';
import rhea, { type Connection, type EventContext, type Message, type Receiver, type Sender } from 'rhea';
import { EmulatorError, conditions } from './errors';
import type { Namespace } from './namespace';
import { answerPutToken } from './links/cbs';
import { ConsumerLink } from './links/consumer';
import { selectorOf, startOf } from './links/filter';
import { answerManagement } from './links/management';
import { Ownership } from './links/ownership';
import { handlePublish, type PublishTarget } from './links/publisher';

export interface AmqpServerOptions {
  maxMessageSize: number;
}

type IncomingHandler = (context: EventContext) => void;

const consumerAddress = /^([^/]+)\/ConsumerGroups\/([^/]+)\/Partitions\/([^/]+)$/i;
const partitionAddress = /^([^/]+)\/Partitions\/([^/]+)$/i;

/**
 * The AMQP link layer: accepts connections, answers CBS and `$management`, and binds publisher and consumer
 * links to the namespace's partition logs. Every link's attach reports `max_message_size`.
 */
export class AmqpServer {
  private readonly container = rhea.create_container({ id: 'mdc-eventhubs-emulator' });
  private listener: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly connections = new Set<Connection>();
  private readonly incoming = new WeakMap<Receiver, IncomingHandler>();
  private readonly consumers = new WeakMap<Sender, ConsumerLink>();
  private readonly replyLinks = new WeakMap<Connection, Map<string, Sender>>();
  private readonly ownership = new Ownership();

  constructor(private readonly namespace: Namespace, private readonly options: AmqpServerOptions) {
    const c = this.container;
    c.on('connection_open', (context: EventContext) => this.connections.add(context.connection));
    c.on('connection_close', (context: EventContext) => this.dropConnection(context.connection));
    c.on('disconnected', (context: EventContext) => this.dropConnection(context.connection));
    c.on('sender_open', (context: EventContext) => this.openSender(context.sender as Sender));
    c.on('receiver_open', (context: EventContext) => this.openReceiver(context.receiver as Receiver));
    c.on('message', (context: EventContext) => this.incoming.get(context.receiver as Receiver)?.(context));
    c.on('sendable', (context: EventContext) => this.consumers.get(context.sender as Sender)?.pump());
    c.on('sender_draining', (context: EventContext) => this.consumers.get(context.sender as Sender)?.pump());
    c.on('sender_close', (context: EventContext) => this.endConsumer(context.sender as Sender));
    // Clients vanish without ceremony (killed tests, Ctrl-C); that must never bring the emulator down.
    c.on('error', () => undefined);
    c.on('connection_error', () => undefined);
    c.on('sender_error', () => undefined);
    c.on('receiver_error', () => undefined);
    c.on('session_error', () => undefined);
    c.on('protocol_error', () => undefined);
  }

  listen(host: string, port: number): Promise<number> {
    const linkOptions = { max_message_size: this.options.maxMessageSize };
    const server = this.container.listen({
      host,
      port,
      receiver_options: { ...linkOptions, autoaccept: false },
      sender_options: linkOptions,
    } as unknown as rhea.ServerConnectionOptions) as Server;
    this.listener = server;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      coalesceWrites(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** Closes every connection, then the listener; sockets that do not go quietly are destroyed. */
  async close(): Promise<void> {
    for (const connection of this.connections) {
      try {
        connection.close();
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 1000;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const socket of this.sockets) socket.destroy();
    const listener = this.listener;
    this.listener = undefined;
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  private openSender(sender: Sender): void {
    const address = String(sender.source?.address ?? '');
    const targetAddress = sender.target?.address;
    if (address === '$cbs' || address === '$management') {
      const links = this.replyLinks.get(sender.connection) ?? new Map<string, Sender>();
      links.set(sender.name, sender);
      if (targetAddress) links.set(String(targetAddress), sender);
      this.replyLinks.set(sender.connection, links);
      this.echoTerminus(sender, address, targetAddress);
      return;
    }
    try {
      const match = consumerAddress.exec(address);
      if (!match) throw new EmulatorError(conditions.notFound, `The messaging entity '${this.namespace.endpoint}${address}' could not be found.`);
      const [, hubName, group, partitionId] = match;
      this.namespace.consumerGroup(hubName, group);
      const log = this.namespace.partition(hubName, partitionId);
      const start = startOf(selectorOf(sender.source?.filter), log);
      const key = `${hubName.toLowerCase()}/${group.toLowerCase()}/${partitionId}`;
      settleOnSend(sender);
      const consumer = new ConsumerLink(sender, log, start, epochOf(sender.properties), (ended) => {
        this.ownership.release(key, ended);
        this.consumers.delete(sender);
      });
      this.ownership.claim(key, consumer);
      this.consumers.set(sender, consumer);
      this.echoTerminus(sender, address, targetAddress);
    } catch (error) {
      refuse(sender, error);
    }
  }

  private openReceiver(receiver: Receiver): void {
    const address = String(receiver.target?.address ?? '');
    this.echoTerminus(receiver, receiver.source?.address, address);
    if (address === '$cbs') {
      this.incoming.set(receiver, (context) => this.reply(context, answerPutToken(context.message as Message)));
      return;
    }
    if (address === '$management') {
      this.incoming.set(receiver, (context) => this.reply(context, answerManagement(context.message as Message, this.namespace)));
      return;
    }
    try {
      const partition = partitionAddress.exec(address);
      const target: PublishTarget = partition ? { hub: partition[1], partitionId: partition[2] } : { hub: address };
      if (target.partitionId !== undefined) this.namespace.partition(target.hub, target.partitionId);
      else this.namespace.hub(target.hub);
      this.incoming.set(receiver, (context) => handlePublish(context, target, this.namespace, this.options.maxMessageSize));
    } catch (error) {
      refuse(receiver, error);
    }
  }

  /** Sends a request's answer on the link the client named in `reply_to`, then settles the request. */
  private reply(context: EventContext, answer: Message): void {
    const request = context.message as Message;
    const links = this.replyLinks.get(context.connection);
    const replyTo = request.reply_to === undefined ? undefined : String(request.reply_to);
    const link = replyTo === undefined ? undefined : links?.get(replyTo);
    context.delivery?.accept();
    if (link && link.is_open()) link.send(answer);
  }

  private endConsumer(sender: Sender): void {
    this.consumers.get(sender)?.end();
  }

  private dropConnection(connection: Connection): void {
    this.connections.delete(connection);
    this.replyLinks.delete(connection);
    for (const session of Object.values((connection as unknown as { local_channel_map?: Record<string, unknown> }).local_channel_map ?? {})) {
      const links = (session as { links?: Record<string, Sender | Receiver> }).links ?? {};
      for (const link of Object.values(links)) if (link.is_sender()) this.endConsumer(link as Sender);
    }
  }

  private echoTerminus(link: Sender | Receiver, source: unknown, target: unknown): void {
    if (source !== undefined && source !== null) link.set_source({ address: String(source) });
    if (target !== undefined && target !== null) link.set_target({ address: String(target) });
  }
}

/** Refuses a link as the service does: the attach is answered, then detached at once with the condition. */
function refuse(link: Sender | Receiver, error: unknown): void {
  const failure =
    error instanceof EmulatorError
      ? error.toAmqp()
      : { condition: conditions.internalError, description: error instanceof Error ? error.message : String(error) };
  link.close(failure);
}

/**
 * Event deliveries go out settled, as the service does for its consumers (the .NET client attaches with
 * SettleOnSend): checkpoints live in the client's store, so a per-event disposition would only cost frames
 * both ways. A receiver that asks for unsettled deliveries (mode 0) still gets them.
 */
function settleOnSend(sender: Sender): void {
  if (sender.snd_settle_mode === 0) return;
  (sender as unknown as { local: { attach: { snd_settle_mode: number } } }).local.attach.snd_settle_mode = 1;
}

/**
 * rhea writes every frame with its own `socket.write`, a syscall per event when streaming a partition. Corking
 * the socket for the rest of the tick sends the frames written in one turn together.
 */
function coalesceWrites(socket: Socket): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Socket['write'];
}

function epochOf(properties: Record<string, unknown> | undefined): number | undefined {
  const raw = properties?.['com.microsoft:epoch'];
  if (raw === undefined || raw === null) return undefined;
  const value = typeof raw === 'object' && 'value' in (raw as object) ? (raw as { value: unknown }).value : raw;
  const epoch = Number(value);
  return Number.isFinite(epoch) ? epoch : undefined;
}
