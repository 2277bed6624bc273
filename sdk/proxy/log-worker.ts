import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { CollectorError } from '../typescript/src/errors';
import { at, bodyHeaders, logHeaders, numbersPerExchange, single, type FromLogWorker, type LogBatch, type LoggedError, type LogWorkerData, type ToLogWorker } from './log-records';
import { PayloadLogger } from './payload-logger';

/**
 * The log thread of `log-channel.ts`: builds each exchange's `request` and `response` logs and sends them with a
 * `PayloadLogger`. Its heap is its own, so the garbage of logs in flight never pauses the proxy's answers.
 */

const data = workerData as LogWorkerData;

// Answers first: when the machine is short of CPU, this thread yields to the one that forwards (Linux takes a
// thread's id where a process id goes). Logs then fall behind, and past the queue's bound are dropped and counted.
try {
  os.setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  // not Linux: the thread keeps the process's priority
}
const port = parentPort!;
let errors: LoggedError[] = [];
let took = 0;
let errorTimer: NodeJS.Timeout | undefined;
let ackTimer: NodeJS.Timeout | undefined;

const logger = new PayloadLogger({
  ...data.logger,
  onError: (error: CollectorError) => {
    errors.push({ code: error.code, message: error.message, dropped: error.dropped, ...(error.status !== undefined ? { status: error.status } : {}) });
    // Losses reach the proxy's thread soon even while no logs arrive to answer.
    errorTimer ??= setTimeout(() => {
      errorTimer = undefined;
      if (errors.length > 0) answer();
    }, 50);
  },
});

function answer(reply?: number): void {
  const message: FromLogWorker = {
    stats: { ...logger.stats },
    pending: logger.pending,
    collectorDown: logger.collectorDown,
    took,
    errors,
    ...(reply !== undefined ? { reply } : {}),
  };
  took = 0;
  errors = [];
  port.postMessage(message);
}

function logAll(batch: LogBatch): void {
  const { numbers, bytes } = batch;
  for (let i = 0; i < batch.ids.length; i++) {
    const n = i * numbersPerExchange;
    const shared = logHeaders(batch, i, data.logger.key, data.modelVersion);
    const requestAt = numbers[n + at.requestAt]!;
    if (requestAt >= 0) {
      took++;
      const kept = numbers[n + at.requestKept]!;
      const headers = bodyHeaders(shared, single(batch.headers[i]!['content-type']), kept, numbers[n + at.requestTotal]!);
      logger.log({ collection: 'request', body: Buffer.from(bytes, requestAt, kept), headers });
    }
    const responseAt = numbers[n + at.responseAt]!;
    if (responseAt >= 0) {
      took++;
      const kept = numbers[n + at.responseKept]!;
      const headers = bodyHeaders(shared, batch.types[i], kept, numbers[n + at.responseTotal]!, 4);
      const end = headers.length;
      headers[end - 4] = 'x-mdc-status';
      headers[end - 3] = String(numbers[n + at.status]);
      headers[end - 2] = 'x-mdc-duration-ms';
      headers[end - 1] = numbers[n + at.durationMs]!.toFixed(3);
      logger.log({ collection: 'response', body: Buffer.from(bytes, responseAt, kept), headers });
    }
  }
}

port.on('message', (message: ToLogWorker) => {
  switch (message.kind) {
    case 'logs':
      logAll(message);
      // Every message wakes the proxy's thread: say what was taken a few times a second, not once per batch.
      ackTimer ??= setTimeout(() => {
        ackTimer = undefined;
        if (took > 0) answer();
      }, 100);
      return;
    case 'state':
      answer(message.id);
      return;
    case 'flush':
      void logger.flush().then(() => answer(message.id));
      return;
    case 'close':
      void logger.close(message.timeoutMs !== undefined ? { timeoutMs: message.timeoutMs } : {}).then(() => {
        clearTimeout(errorTimer);
        clearTimeout(ackTimer);
        answer(message.id);
        port.close();
      });
      return;
  }
});
