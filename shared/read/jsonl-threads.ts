import type { Worker } from 'node:worker_threads';
import { startWorkerFile } from '../worker-file';
import { JsonlChunks, type JsonlPiece, type LineWindow } from './jsonl-chunks';
import type { JsonlAnswer, JsonlRequest } from './jsonl-worker';

/** One blob's chunks going through `JsonlChunks`; answers come in the order the chunks were pushed. */
export interface JsonlStream {
  /**
   * A chunk that is a whole buffer of its own, or a `linesBatch` (`batch`), is handed over (transferred, not
   * copied): the caller must not use it again.
   */
  push(chunk: Uint8Array, batch?: boolean): Promise<JsonlPiece[]>;
  end(): Promise<JsonlPiece[]>;
  /** Lets go of the blob's state, whether or not it was read to the end. */
  close(): void;
}

interface Waiter {
  resolve(pieces: JsonlPiece[]): void;
  reject(error: Error): void;
}

/**
 * Turning lines into rows is most of a read's CPU: a worker thread does it while the request's own thread
 * downloads and sends, so the two overlap. One worker serves every read of the process.
 */
class JsonlWorker {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter[]>();

  constructor(onExit: () => void) {
    this.worker = startWorkerFile(__filename, 'jsonl-worker');
    this.worker.on('message', (answer: JsonlAnswer) => {
      const waiter = this.waiting.get(answer.id)?.shift();
      if (!waiter) return;
      if (answer.pieces) waiter.resolve(answer.pieces);
      else waiter.reject(new Error(`the JSONL worker failed: ${answer.error}`));
    });
    const fail = (error: Error) => {
      onExit();
      for (const waiters of this.waiting.values()) for (const waiter of waiters) waiter.reject(error);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the JSONL worker exited with ${code}`)));
    // Held only while a blob is open, so an idle worker never keeps the process alive (after the listeners:
    // adding a 'message' listener refs it again).
    this.worker.unref();
  }

  open(window: LineWindow): JsonlStream {
    const id = this.nextId++;
    if (this.waiting.size === 0) this.worker.ref();
    this.waiting.set(id, []);
    this.post({ id, kind: 'open', window });
    const ask = (request: JsonlRequest, transfer: ArrayBuffer[] = []) =>
      new Promise<JsonlPiece[]>((resolve, reject) => {
        const waiters = this.waiting.get(id);
        if (!waiters) return reject(new Error('the JSONL worker is gone'));
        waiters.push({ resolve, reject });
        this.post(request, transfer);
      });
    return {
      push: (chunk, batch = false) =>
        ask({ id, kind: 'chunk', chunk, batch }, batch || (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength) ? [chunk.buffer as ArrayBuffer] : []),
      end: () => ask({ id, kind: 'end' }),
      close: () => {
        if (!this.waiting.delete(id)) return;
        this.post({ id, kind: 'close' });
        if (this.waiting.size === 0) this.worker.unref();
      },
    };
  }

  private post(request: JsonlRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }
}

let worker: JsonlWorker | undefined;

/** A stream on the shared worker; in this thread when the worker cannot be created (a worker that fails to load rejects the read instead). */
export function openJsonlStream(window: LineWindow): JsonlStream {
  try {
    worker ??= new JsonlWorker(() => (worker = undefined));
    return worker.open(window);
  } catch {
    const chunks = new JsonlChunks(window);
    return { push: async (chunk, batch) => chunks.push(chunk, batch), end: async () => chunks.end(), close: () => undefined };
  }
}
