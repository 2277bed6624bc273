/**
 * What the payload-logging proxy adds to a model's latency: p99 through the proxy minus p99 straight to the
 * model server, measured in the same run at the same fixed rate (target: ≤ 2 ms). The model server, the
 * collector stand-in (a 202 sink) and the proxy each run in their own process, as they would in production;
 * autocannon drives the load from this one. A third run points the proxy at a collector that is down.
 *
 *   npm run bench:proxy            (BENCH_SECONDS=8 BENCH_RATE=1000 BENCH_CONNECTIONS=8 to change the load)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort, waitForPort } from '../local/ports';

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const warmupSeconds = 2;
const rate = Number(process.env.BENCH_RATE ?? 1000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 8);
const rounds = 2;
const targetAddedP99Ms = 2;
const root = path.resolve(__dirname, '..');

// A model server and a collector sink small enough that they measure the proxy, not themselves.
const modelServer = `
const http = require('node:http');
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const input = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    const body = JSON.stringify({ predictions: (input.data || []).map((row) => row.reduce((a, b) => a + b, 0) / 100) });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
}).listen(Number(process.argv[1]), '127.0.0.1');`;
const collectorSink = `
const http = require('node:http');
let n = 0;
http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    n++;
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end('{"accepted":1,"ids":[],"correlationid":"x","sampled":true}');
  });
}).listen(Number(process.argv[1]), '127.0.0.1');
process.on('SIGTERM', () => { console.log(n); process.exit(0); });`;

const children: ChildProcess[] = [];

async function startNode(args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await waitForPort(port, { timeoutMs: 30_000 });
  return child;
}

async function stop(child: ChildProcess): Promise<string> {
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
  return out;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

interface Sample {
  latencies: number[];
  errors: number;
  non2xx: number;
  requests: number;
}

async function load(url: string, durationSeconds: number): Promise<Sample> {
  const latencies: number[] = [];
  let finished!: (result: autocannon.Result) => void;
  let failed!: (error: unknown) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finished = resolve;
    failed = reject;
  });
  const instance = autocannon({
    url: `${url}/score`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data: [[502970, 54, 2, 1, 0.25], [20000, 24, 1, 2, 0.5]] }),
    connections,
    overallRate: rate,
    duration: durationSeconds,
  }, (error, result) => (error ? failed(error) : finished(result)));
  // autocannon's own histogram has 1 ms resolution; keep every float latency instead.
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    if (status >= 200 && status < 300) latencies.push(responseTime);
  });
  const result = await done;
  return { latencies, errors: result.errors, non2xx: result.non2xx, requests: result.requests.total };
}

function merge(samples: Sample[]): Sample {
  return {
    latencies: samples.flatMap((s) => s.latencies).sort((a, b) => a - b),
    errors: samples.reduce((n, s) => n + s.errors, 0),
    non2xx: samples.reduce((n, s) => n + s.non2xx, 0),
    requests: samples.reduce((n, s) => n + s.requests, 0),
  };
}

/** Replaces this bench's own section of BENCHMARKS.md (between its markers) and leaves the others alone. */
function writeSection(markdown: string): void {
  const file = path.join(root, 'BENCHMARKS.md');
  const open = '<!-- bench:proxy -->';
  const close = '<!-- /bench:proxy -->';
  const section = `${open}\n${markdown.trimEnd()}\n${close}\n`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const start = current.indexOf(open);
  const end = current.indexOf(close);
  const next =
    start !== -1 && end > start ? current.slice(0, start) + section + current.slice(end + close.length).replace(/^\n/, '') : `${current.trimEnd()}\n\n${section}`;
  writeFileSync(file, next);
}

async function main(): Promise<void> {
  const [modelPort, sinkPort, proxyPort, downProxyPort, deadPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  await startNode(['-e', modelServer, String(modelPort)], modelPort);
  const sink = await startNode(['-e', collectorSink, String(sinkPort)], sinkPort);
  const proxyArgs = (port: number, collectorPort: number) => [
    '--import',
    'tsx',
    'sdk/proxy/main.ts',
    '--target',
    `http://127.0.0.1:${modelPort}`,
    '--port',
    String(port),
    '--endpoint',
    'bench',
    '--deployment',
    'blue',
    '--key',
    'bench-key',
    '--collector',
    `http://127.0.0.1:${collectorPort}`,
  ];
  const proxy = await startNode(proxyArgs(proxyPort, sinkPort), proxyPort);
  const downProxy = await startNode(proxyArgs(downProxyPort, deadPort), downProxyPort);

  const scenarios = [
    { name: 'direct to the model', url: `http://127.0.0.1:${modelPort}` },
    { name: 'through the proxy', url: `http://127.0.0.1:${proxyPort}` },
    { name: 'through the proxy, collector down', url: `http://127.0.0.1:${downProxyPort}` },
  ];
  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      await load(scenario.url, warmupSeconds);
      samples.get(scenario.name)!.push(await load(scenario.url, seconds));
      console.error(`round ${round + 1}: ${scenario.name} done`);
    }
  }
  await stop(proxy);
  await stop(downProxy);
  const logged = Number((await stop(sink)).trim());

  const direct = merge(samples.get(scenarios[0]!.name)!);
  const directP99 = percentile(direct.latencies, 99);
  const rows = scenarios.map((scenario) => {
    const s = merge(samples.get(scenario.name)!);
    const p99 = percentile(s.latencies, 99);
    return {
      scenario: scenario.name,
      requests: s.requests,
      'p50 ms': percentile(s.latencies, 50).toFixed(2),
      'p90 ms': percentile(s.latencies, 90).toFixed(2),
      'p99 ms': p99.toFixed(2),
      'added p99 ms': scenario === scenarios[0] ? '—' : (p99 - directP99).toFixed(2),
      'p99 ratio': (p99 / directP99).toFixed(2),
      'errors/non-2xx': `${s.errors}/${s.non2xx}`,
    };
  });
  console.table(rows);
  const worstAdded = Math.max(...rows.slice(1).map((r) => Number(r['added p99 ms'])));
  const verdict = worstAdded <= targetAddedP99Ms ? 'meets' : 'MISSES';
  console.log(`added p99: ${worstAdded.toFixed(2)} ms (${verdict} the ≤ ${targetAddedP99Ms} ms target); payload logs received by the sink: ${logged}`);

  const columns = Object.keys(rows[0]!);
  const table = [
    `| ${columns.join(' | ')} |`,
    `|${columns.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${columns.map((c) => String(r[c as keyof typeof r])).join(' | ')} |`),
  ].join('\n');
  writeSection(
    `## Payload-logging proxy (\`npm run bench:proxy\`)\n\n` +
      `Measured ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${rounds} rounds × ${seconds} s per scenario at ${rate} req/s over ${connections} connections ` +
      `(autocannon, fixed rate); model server, collector sink and proxy in separate processes on the same 2-core machine. ` +
      `The proxy sends two payload logs per request (request + response) to the sink, which received ${logged}.\n\n` +
      `${table}\n\n` +
      `Added p99 latency, worst case: **${worstAdded.toFixed(2)} ms** (target ≤ ${targetAddedP99Ms} ms: ${verdict}).\n`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  });
