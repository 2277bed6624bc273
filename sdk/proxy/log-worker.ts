import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { CollectorError } from '../typescript/src/errors';
import { bodyHeaders, logHeaders, single, type FromLogWorker, type LoggedError, type LogRecord, type LogWorkerData, type ToLogWorker } from './log-records';
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

function logAll(records: LogRecord[], bytes: ArrayBuffer): void {
  for (const record of records) {
    const shared = logHeaders(record, data.modelVersion);
    const { request, response } = record;
    if (request) {
      took++;
      logger.log({ collection: 'request', body: Buffer.from(bytes, request.at, request.kept), headers: bodyHeaders(shared, single(record.headers['content-type']), request) });
    }
    if (response) {
      took++;
      const headers = bodyHeaders(shared, response.type, response);
      headers['x-mdc-status'] = String(response.status);
      headers['x-mdc-duration-ms'] = response.durationMs.toFixed(3);
      logger.log({ collection: 'response', body: Buffer.from(bytes, response.at, response.kept), headers });
    }
  }
}

port.on('message', (message: ToLogWorker) => {
  switch (message.kind) {
    case 'logs':
      logAll(message.records, message.bytes);
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
