import { createServer, type Server } from 'node:http';
import type { AccessToken, TokenCredential } from '@azure/identity';

/**
 * A loopback stand-in for Azure Resource Manager that records every request, so tests can assert what the
 * collector would send to an Azure ML workspace. `failNext(n, status)` makes the next n requests fail.
 */

export interface ArmRequest {
  method: string;
  path: string;
  apiVersion: string | null;
  authorization: string | undefined;
  body: unknown;
}

export interface FakeArm {
  url: string;
  requests: ArmRequest[];
  failNext(count: number, status: number): void;
  close(): Promise<void>;
}

export async function startFakeArm(): Promise<FakeArm> {
  const requests: ArmRequest[] = [];
  let failures: { count: number; status: number } = { count: 0, status: 500 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://arm.local');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // keep the text
      }
      requests.push({ method: req.method ?? '', path: url.pathname, apiVersion: url.searchParams.get('api-version'), authorization: req.headers.authorization, body });
      if (failures.count > 0) {
        failures.count -= 1;
        res.writeHead(failures.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'InternalServerError', message: 'fake outage' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: url.pathname, ...(body as object) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failNext: (count, status) => {
      failures = { count, status };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A credential that hands out one fixed token, as a managed identity would hand out a real one. */
export function staticCredential(token: string): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
}
