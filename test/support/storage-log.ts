import { createServer, request as httpRequest, type Server } from 'node:http';

/**
 * A recording proxy in front of Azurite: every storage request passes through it and is logged, so a test can
 * see which prefixes were listed. Point a BlobServiceClient at `blobEndpoint` instead of Azurite's.
 */

export interface LoggedRequest {
  method: string;
  url: URL;
}

export interface StorageLog {
  blobEndpoint: string;
  requests: LoggedRequest[];
  /** The `prefix` of every list call, in order (listings without a prefix show as ''). */
  listedPrefixes(): string[];
  close(): Promise<void>;
}

export async function startStorageLog(azuritePort: number, account = 'devstoreaccount1'): Promise<StorageLog> {
  const requests: LoggedRequest[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: new URL(req.url ?? '/', 'http://storage.local') });
    const upstream = httpRequest({ host: '127.0.0.1', port: azuritePort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    blobEndpoint: `http://127.0.0.1:${port}/${account}`,
    requests,
    listedPrefixes: () => requests.filter((r) => r.url.searchParams.get('comp') === 'list').map((r) => r.url.searchParams.get('prefix') ?? ''),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
