/**
 * `npm run bench:append`: rows/s and MB/s that move from the hub into Azurite through the real trigger path
 * (the Event Hubs emulator, the local host in its own process, `append`), for rows of about 200 B and 4 KB,
 * against two baselines measured in the same run:
 *  - the limit: raw uploads of the same bytes in the same block sizes, staged and committed one block at a
 *    time per file, with the same four files in parallel (the least work that makes each batch readable);
 *  - naive: one `appendBlock` per event to an append blob;
 * and a ceiling: the hub drain, the same events received with the SDK and dropped. It also samples the host process's RSS while the data passes,
 * and records each process's CPU during each run (which one is saturated says what bounds it). Writes its section of BENCHMARKS.md.
 *
 * MDC_BENCH_APPEND_MB sets the megabytes of lines per row size (default 256); MDC_BENCH_NAIVE_EVENTS the
 * events of the naive baseline (default 3000); MDC_BENCH_APPEND_ROWS=200 or 4096 runs one row size and leaves
 * BENCHMARKS.md alone; MDC_BENCH_CPU_PROF=<dir> writes CPU profiles of the host and hub drain processes there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from '@azure/event-hubs';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { startAzurite, type Azurite } from '../local/azurite';
import { startEventHubsEmulator, type EventHubsEmulator } from '../local/eventhubs';
import { readHostJson } from '../local/host/host-json';
import { freePort } from '../local/ports';
import { writeBenchSection } from './benchmarks-md';
import { cpuSeconds } from './process-cpu';
import { encodeBlockId } from '../shared/append/block-id';
import { buildLine, serializeData } from '../shared/append/line';
import type { HubEvent } from '../shared/hub-event';

const targetMB = Number(process.env.MDC_BENCH_APPEND_MB ?? 256);
const naiveEvents = Number(process.env.MDC_BENCH_NAIVE_EVENTS ?? 3000);
// MDC_BENCH_APPEND_ROWS=200 (or 4096) runs one row size only, for iterating; BENCHMARKS.md wants both.
const sizes = (
  [
    ['~200 B', 200],
    ['~4 KB', 4096],
  ] as const
).filter(([, bytes]) => !process.env.MDC_BENCH_APPEND_ROWS || Number(process.env.MDC_BENCH_APPEND_ROWS) === bytes);
const container = 'azureml-blobstore';
const partitions = 4;
const root = path.resolve(__dirname, '..');
const hostOptions = readHostJson(path.join(root, 'host.json')).eventHubs;

function hubEventOf(i: number, rowBytes: number): HubEvent {
  const id = randomUUID();
  const row: Record<string, unknown> = { AGE: 20 + (i % 50), LIMIT_BAL: (i * 7919) % 900_000, SEX: i % 2 ? 'F' : 'M', EDUCATION: i % 4 };
  const pad = rowBytes - JSON.stringify(row).length - 10;
  row.NOTE = 'x'.repeat(Math.max(0, pad));
  return {
    v: 1,
    id,
    endpoint: 'bench-ep',
    deployment: 'blue',
    collection: 'model_inputs',
    time: '2024-03-05T18:16:25Z',
    source: '/subscriptions//resourceGroups//providers/Microsoft.MachineLearningServices/workspaces//onlineEndpoints/bench-ep/deployments/blue',
    type: 'azureml.inference.model_inputs',
    datacontenttype: 'application/json',
    correlationid: id,
    xrequestid: id,
    modelversion: 'default',
    collectdatatype: 'pandas.core.frame.DataFrame',
    agent: 'bench',
    target: { container, path: 'modelDataCollector/bench-ep/blue/model_inputs', rollingRate: 'Hour' },
    payload: { kind: 'inline', data: [row] },
  };
}

function lineOf(event: HubEvent): string {
  return buildLine(event, { kind: 'data', json: serializeData((event.payload as { data: unknown }).data) });
}

/** Fills the hub's partitions with events whose lines add up to `targetMB`; returns count and line bytes. */
async function preload(connectionString: string, hub: string, rowBytes: number): Promise<{ events: number; bytes: number }> {
  const producer = new EventHubProducerClient(connectionString, hub);
  const target = targetMB * 1024 * 1024;
  let bytes = 0;
  let events = 0;
  let partition = 0;
  try {
    while (bytes < target) {
      const batch = await producer.createBatch({ partitionId: String(partition) });
      partition = (partition + 1) % partitions;
      while (bytes < target) {
        const event = hubEventOf(events, rowBytes);
        if (!batch.tryAdd({ body: event })) break;
        bytes += Buffer.byteLength(lineOf(event));
        events += 1;
      }
      await producer.sendBatch(batch);
    }
  } finally {
    await producer.close();
  }
  return { events, bytes };
}

function rssMB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The cpuMeter entry for both cores' busy time. */
const machine = 'machine, all cores';

/**
 * Starts measuring the CPU of named processes; the returned function gives each one's share of one core since
 * then. On 2 cores it tells which process is the bound: one near 100 % is saturated.
 */
function cpuMeter(pids: Record<string, number | 'self' | 'machine'>): () => Record<string, number> {
  const since = Date.now();
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  return () => {
    const wall = (Date.now() - since) / 1000;
    return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, (cpuSeconds(pid) - before[name]!) / wall]));
  };
}

function cpuText(shares: Record<string, number> | undefined): string {
  if (!shares) return '';
  return Object.entries(shares)
    .map(([name, share]) => `${name} ${Math.round(share * 100)}%`)
    .join(', ');
}

/** MDC_BENCH_CPU_PROF=<dir> profiles the host and the hub drain processes into that folder. */
function cpuProfArgs(): string[] {
  return process.env.MDC_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MDC_BENCH_CPU_PROF] : [];
}

async function spawnHost(env: Record<string, string>): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...cpuProfArgs(), '--import', 'tsx', path.join(root, 'local', 'host', 'main.ts')], {
    cwd: root,
    env: { ...process.env, ...env, MDC_LOCAL_HOST_PORT: String(port), MDC_LOCAL_LOG_LEVEL: 'warning' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('local host ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`host exited with ${code}`)));
  });
  return child;
}

async function committedBytes(data: ContainerClient): Promise<number> {
  let total = 0;
  if (!(await data.exists())) return 0;
  for await (const blob of data.listBlobsFlat({ prefix: 'modelDataCollector/' })) total += blob.properties.contentLength ?? 0;
  return total;
}

interface Run {
  name: string;
  rows: number;
  bytes: number;
  seconds: number;
  peakRssMB?: number;
  rssAtQuarters?: number[];
  blockSizes?: number[];
  /** Each process's CPU while the run was timed, as a share of one core. */
  cpu?: Record<string, number>;
}

/**
 * The real path: a host process drains the preloaded hub into Azurite; timed from the moment the host says it is
 * ready (its trigger subscribed) to the last byte committed. Starting the process (loading and transpiling the
 * app) is a fixed cost that is not throughput; it is reported apart.
 */
async function triggerPath(azurite: Azurite, emulator: EventHubsEmulator, hub: string, rowBytes: number): Promise<Run & { startupSeconds: number }> {
  const preloading = Date.now();
  const loaded = await preload(emulator.connectionString(), hub, rowBytes);
  console.log(`preloaded ${loaded.events} events in ${(Date.now() - preloading) / 1000}s`);
  const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  const data = service.getContainerClient(container);
  const spawned = Date.now();
  const host = await spawnHost({
    AzureWebJobsStorage: azurite.connectionString,
    MDC_STORAGE: azurite.connectionString,
    MDC_EVENTHUB: emulator.connectionString(),
    MDC_EVENTHUB_NAME: hub,
    MDC_ADMIN_KEY: 'bench-admin-key-0123456789',
  });
  const started = Date.now();
  const cpu = cpuMeter({ host: host.pid!, 'emulator (bench)': 'self', Azurite: azurite.pid!, [machine]: 'machine' });
  let peak = 0;
  const quarters: number[] = [];
  let done = 0;
  let firstByteAt = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMB(host.pid!))), 100);
  try {
    while (done < loaded.bytes) {
      await new Promise((r) => setTimeout(r, 250));
      done = await committedBytes(data);
      if (done > 0 && firstByteAt === 0) firstByteAt = Date.now();
      while (quarters.length < 4 && done >= (loaded.bytes * (quarters.length + 1)) / 4) quarters.push(Math.round(rssMB(host.pid!)));
    }
  } finally {
    clearInterval(sampler);
  }
  const seconds = (Date.now() - started) / 1000;
  const shares = cpu();
  console.log(`host process start to ready ${(started - spawned) / 1000}s, ready to first byte ${(firstByteAt - started) / 1000}s, first byte to last ${(Date.now() - firstByteAt) / 1000}s`);
  host.kill('SIGTERM');
  await new Promise((r) => host.once('exit', r));
  const blockSizes: number[] = [];
  for await (const blob of data.listBlobsFlat({ prefix: 'modelDataCollector/' })) {
    const list = await data.getBlockBlobClient(blob.name).getBlockList('committed');
    for (const block of list.committedBlocks ?? []) blockSizes.push(block.size);
  }
  return {
    name: 'append (hub → trigger → Azurite)',
    rows: loaded.events,
    bytes: loaded.bytes,
    seconds,
    startupSeconds: (started - spawned) / 1000,
    peakRssMB: Math.round(peak),
    rssAtQuarters: quarters,
    blockSizes,
    cpu: shares,
  };
}

/**
 * The hub alone: the same events received with the host's batch settings and dropped, in a process of its own
 * as the host is, to show how much of the time the trigger path spends just getting events off the hub. Timed,
 * like the host, from the subscription to the last event.
 */
async function hubDrain(emulator: EventHubsEmulator, hub: string, events: number, bytes: number): Promise<Run> {
  let cpu: (() => Record<string, number>) | undefined;
  let shares: Record<string, number> | undefined;
  const child = spawn(process.execPath, [...cpuProfArgs(), '--import', 'tsx', __filename, '--drain', hub, String(events)], {
    cwd: root,
    env: { ...process.env, MDC_EVENTHUB: emulator.connectionString() },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const seconds = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'subscribing') cpu = cpuMeter({ 'SDK drain': child.pid!, 'emulator (bench)': 'self', [machine]: 'machine' });
      const match = /^drained in (\S+) s$/.exec(line);
      if (match) {
        shares = cpu?.();
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`hub drain exited with ${code}`)));
  });
  await new Promise((r) => child.once('exit', r));
  return { name: 'hub drain only: SDK receive and drop', rows: events, bytes, seconds, ...(shares ? { cpu: shares } : {}) };
}

/** The child side of `hubDrain`. */
async function drainChild(hub: string, events: number): Promise<void> {
  const consumer = new EventHubConsumerClient('$Default', process.env.MDC_EVENTHUB!, hub);
  let received = 0;
  console.log('subscribing');
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const subscription = consumer.subscribe(
      {
        processEvents: async (batch) => {
          received += batch.length;
          if (received >= events) subscription.close().then(resolve, reject);
        },
        processError: async (error) => reject(error),
      },
      {
        startPosition: earliestEventPosition,
        maxBatchSize: hostOptions.maxEventBatchSize,
        maxWaitTimeInSeconds: hostOptions.maxWaitTimeInSeconds,
        prefetchCount: hostOptions.prefetchCount,
      },
    );
  });
  console.log(`drained in ${(Date.now() - started) / 1000} s`);
  await consumer.close();
}

/** The same bytes in the same block sizes, staged and committed block by block, four files at a time. */
async function limit(azurite: Azurite, blockSizes: number[], rows: number): Promise<Run> {
  const data = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(`limit-${randomUUID().slice(0, 8)}`);
  await data.create();
  const largest = Math.max(...blockSizes);
  const payload = Buffer.alloc(largest, 'x');
  const lanes = Array.from({ length: partitions }, (_, lane) => blockSizes.filter((_, i) => i % partitions === lane));
  const started = Date.now();
  const cpu = cpuMeter({ 'uploader (bench)': 'self', Azurite: azurite.pid!, [machine]: 'machine' });
  await Promise.all(
    lanes.map(async (sizes, lane) => {
      const ids: string[] = [];
      let file = data.getBlockBlobClient(`raw/${lane}.jsonl`);
      for (const [i, size] of sizes.entries()) {
        if (ids.length === 1000) {
          ids.length = 0;
          file = data.getBlockBlobClient(`raw/${lane}_${i}.jsonl`);
        }
        const id = encodeBlockId({ partitionId: String(lane), firstSequenceNumber: i, lastSequenceNumber: i, part: 0 });
        await file.stageBlock(id, payload.subarray(0, size), size);
        ids.push(id);
        await file.commitBlockList(ids);
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  return { name: 'limit: raw stage + commit, same blocks', rows, bytes: blockSizes.reduce((a, b) => a + b, 0), seconds, cpu: cpu() };
}

/** One append per event: what a writer without batching does. */
async function naive(azurite: Azurite, rowBytes: number): Promise<Run> {
  const data = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(`naive-${randomUUID().slice(0, 8)}`);
  await data.create();
  const blob = data.getAppendBlobClient('naive.jsonl');
  await blob.create();
  const lines = Array.from({ length: naiveEvents }, (_, i) => Buffer.from(lineOf(hubEventOf(i, rowBytes))));
  const started = Date.now();
  for (const line of lines) await blob.appendBlock(line, line.length);
  const seconds = (Date.now() - started) / 1000;
  return { name: 'naive: one appendBlock per event', rows: naiveEvents, bytes: lines.reduce((a, b) => a + b.length, 0), seconds };
}

function row(size: string, run: Run, ratio: string): string {
  const mb = run.bytes / 1024 / 1024;
  const blocks = run.blockSizes ? `${Math.round(run.blockSizes.reduce((a, b) => a + b, 0) / run.blockSizes.length / 1024)} KiB` : '';
  const rss = run.peakRssMB !== undefined ? `${run.peakRssMB} (${run.rssAtQuarters!.join(' / ')})` : '';
  return `| ${size} | ${run.name} | ${run.rows} | ${mb.toFixed(1)} | ${run.seconds.toFixed(1)} | ${Math.round(run.rows / run.seconds)} | ${(mb / run.seconds).toFixed(1)} | ${blocks} | ${rss} | ${cpuText(run.cpu)} | ${ratio} |`;
}


async function main(): Promise<void> {
  const table: string[] = [];
  const ratios: number[] = [];
  const notes: string[] = [];
  const ceilings: string[] = [];
  const budgets: string[] = [];
  const begun = Date.now();
  for (const [label, rowBytes] of sizes) {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mdc-bench-append-'));
    const azurite = await startAzurite();
    const hub = `bench-${rowBytes}`;
    const emulator = await startEventHubsEmulator({ port: 0, dataDir, hubs: [{ name: hub, partitionCount: partitions, consumerGroups: ['$Default'] }] });
    try {
      const real = await triggerPath(azurite, emulator, hub, rowBytes);
      const raw = await limit(azurite, real.blockSizes!, real.rows);
      const slow = await naive(azurite, rowBytes);
      const drain = await hubDrain(emulator, hub, real.rows, real.bytes);
      const rate = (run: Run) => run.bytes / run.seconds;
      const ratio = rate(real) / rate(raw);
      ratios.push(ratio);
      table.push(
        row(label, raw, '1.00'),
        row(label, real, ratio.toFixed(2)),
        row(label, slow, (rate(slow) / rate(raw)).toFixed(2)),
        row(label, drain, (rate(drain) / rate(raw)).toFixed(2)),
      );
      ceilings.push(
        `${label}: the hub drain alone reaches ${(rate(drain) / rate(raw)).toFixed(2)} of the limit; append reaches ${(rate(real) / rate(drain)).toFixed(2)} of the hub drain`,
      );
      // Cores the measured CPU per byte would take at 0.7 of the limit's rate: what the target asks of this machine.
      const coresAtTarget = (run: Run) => ((run.cpu?.[machine] ?? Number.NaN) / rate(run)) * 0.7 * rate(raw);
      budgets.push(
        `${label}: the trigger path ${coresAtTarget(real).toFixed(1)} cores, the hub drain alone ${coresAtTarget(drain).toFixed(1)}`,
      );
      notes.push(`${label}: ${real.blockSizes!.length} blocks committed by append, host ready ${real.startupSeconds.toFixed(1)} s after its process started`);
      console.log(table.slice(-4).join('\n'));
    } finally {
      await emulator.close();
      await azurite.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  const header = [
    '| rows | run | rows (events) | MB of lines | seconds | rows/s | MB/s | mean block | host peak RSS MB (at 1/4, 2/4, 3/4, 4/4) | CPU, share of one core | vs limit |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|',
  ];
  const worst = Math.min(...ratios);
  const minutes = ((Date.now() - begun) / 60_000).toFixed(1);
  const section = `## Append (\`npm run bench:append\`)

${targetMB} MB of lines per row size (one row per event, distinct correlation ids), preloaded on a 4-partition hub of the
project's Event Hubs emulator, then drained by the local host in its own process (host.json: batches of up to
${hostOptions.maxEventBatchSize}, prefetch ${hostOptions.prefetchCount}) into in-memory Azurite; timed from the host's "ready" (trigger
subscribed) until the last byte is committed. On 2 cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; the whole run took
${minutes} minutes. The limit is the same bytes in the same block sizes, staged and committed block by block on four files
at once, in the same run; naive is one \`appendBlock\` per event (${naiveEvents} events). The hub drain receives the same events
with the SDK and the same batch settings and drops them, in a process of its own as the host's: no path through
\`EventHubConsumerClient\` can beat it by much. In the local host the SDK receives on a worker thread and append runs on
the main thread (on Azure the Functions host receives in a process of its own), so the two overlap. RSS is the host
process's (emulator and Azurite run apart), sampled every 100 ms; the quarter columns show whether it grows with the data.
CPU is each process's user + system time while the run was timed, as a share of one core (two cores in all): the bench
process runs the emulator, and is the uploader of the limit; the host's share counts both of its threads; "machine" is
the busy time of both cores together, whoever spent it (200% is all of the machine).${targetMB < 1024 ? ` Less than 1 GB passes per row size: ${targetMB} MB per row size is what fits in about ten minutes here.` : ''}

${[...header, ...table].join('\n')}

Target: append at least 0.70 of the limit. Worst ratio this run: **${worst.toFixed(2)}**${worst >= 0.7 ? '' : ' (NOT met)'}. The ceiling set by receiving
alone: ${ceilings.join('; ')}. At 0.70 of the limit, the CPU each path spent per byte here would take (of the 2 cores, which the
emulator, Azurite and the host share): ${budgets.join('; ')}. ${notes.join('; ')}.
`;
  if (sizes.length === 2) writeBenchSection('append', section);
  console.log(`\nworst ratio ${worst.toFixed(2)}; BENCHMARKS.md updated`);
}

const drainIndex = process.argv.indexOf('--drain');
const run = drainIndex === -1 ? main() : drainChild(process.argv[drainIndex + 1]!, Number(process.argv[drainIndex + 2]));
run.catch((error) => {
  console.error(error);
  process.exit(1);
});
