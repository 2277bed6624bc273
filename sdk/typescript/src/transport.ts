import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { CollectorError } from './errors';

export interface RetryOptions {
  /** Attempts after the first one. Default 6. */
  maxRetries?: number;
  /** The first backoff's upper bound; each retry doubles it. Default 200 ms. */
  baseDelayMs?: number;
  /** No backoff waits longer, `Retry-After` included. Default 10 s. */
  maxDelayMs?: number;
}

export const defaultRetry: Required<RetryOptions> = { maxRetries: 6, baseDelayMs: 200, maxDelayMs: 10_000 };

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Statuses that say "later" rather than "never": throttling, outages, timeouts. */
const retryableStatuses = new Set([408, 429, 500, 502, 503, 504]);

export function isRetryableStatus(status: number): boolean {
  return retryableStatuses.has(status);
}
/** Error bodies are read only to name the problem; never buffer a large one. */
export const maxAnswerBytes = 64 * 1024;

/**
 * Keep-alive HTTP(S) POSTs to the collector. One agent per client, so sockets are reused across batches and a
 * slow collector cannot take more than `maxSockets` connections.
 */
export class HttpSender {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;

  constructor(options: { maxSockets?: number; timeoutMs?: number } = {}) {
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 4 };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  post(url: URL, body: string | Buffer, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const request = (secure ? https : http).request(url, {
        method: 'POST',
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        timeout: this.timeoutMs,
        ...(signal ? { signal } : {}),
      });
      request.on('timeout', () => request.destroy(new Error(`no answer from ${url.host} within ${this.timeoutMs} ms`)));
      request.on('error', reject);
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          if (size < maxAnswerBytes) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('error', reject);
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      request.end(body);
    });
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

export function retryAfterMs(answer: HttpAnswer): number | undefined {
  const raw = answer.headers['retry-after'];
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Exponential backoff with full jitter, so that many clients coming back after an outage do not arrive in step. */
export function backoffMs(attempt: number, retry: Required<RetryOptions>, retryAfter?: number): number {
  if (retryAfter !== undefined) return Math.min(retry.maxDelayMs, retryAfter + Math.random() * retry.baseDelayMs);
  return Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** attempt);
}

/** The collector's own words for a failed answer: its JSON error, else the start of the body. */
export function describeAnswer(answer: HttpAnswer): string {
  try {
    const parsed = JSON.parse(answer.body) as { error?: { code?: string; message?: string } };
    if (parsed.error?.message) return `${answer.status} ${parsed.error.code ?? ''}: ${parsed.error.message}`.replace(' :', ':');
  } catch {
    // not a JSON error body: fall through to the raw text
  }
  return `${answer.status} ${answer.body.slice(0, 200)}`.trim();
}

/**
 * POSTs until the collector accepts (2xx), retrying throttling, outages and network errors. Throws a
 * `CollectorError` that counts `events` as dropped when it gives up or the collector refuses for good.
 */
export async function postWithRetry(
  sender: HttpSender,
  url: URL,
  body: string | Buffer,
  headers: Record<string, string>,
  options: { retry: Required<RetryOptions>; events: number; signal?: AbortSignal },
): Promise<HttpAnswer> {
  const { retry, events, signal } = options;
  for (let attempt = 0; ; attempt++) {
    let answer: HttpAnswer | undefined;
    let failure: unknown;
    try {
      answer = await sender.post(url, body, headers, signal);
    } catch (error) {
      failure = error;
    }
    if (answer && answer.status >= 200 && answer.status < 300) return answer;
    if (answer && !retryableStatuses.has(answer.status)) {
      throw new CollectorError('Rejected', `the collector refused ${events} event(s): ${describeAnswer(answer)}`, {
        dropped: events,
        status: answer.status,
      });
    }
    const reason = answer ? describeAnswer(answer) : (failure as Error)?.message ?? String(failure);
    if (attempt >= retry.maxRetries || signal?.aborted) {
      throw new CollectorError('SendFailed', `gave up sending ${events} event(s) after ${attempt + 1} attempt(s): ${reason}`, {
        dropped: events,
        ...(answer ? { status: answer.status } : {}),
        ...(failure !== undefined ? { cause: failure } : {}),
      });
    }
    try {
      await sleep(backoffMs(attempt, retry, answer ? retryAfterMs(answer) : undefined), undefined, signal ? { signal } : undefined);
    } catch (aborted) {
      throw new CollectorError('SendFailed', `stopped sending ${events} event(s): ${reason}`, { dropped: events, cause: aborted });
    }
  }
}
