import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { EventHubProducerClient } from '@azure/event-hubs';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HubEvent } from '../shared/hub-event';
import { hubEvent } from './support/append-fixtures';
import { eventually, spawnHost, startStack, type SpawnedHost, type Stack } from './support/stack';

/**
 * Exactly once when things break: a host process killed between its blob write and its checkpoint, and
 * storage going away mid-stream. The hosts are real child processes; the files are read back from Azurite.
 */

let stack: Stack;
let producer: EventHubProducerClient;
let location: string;
const hosts: SpawnedHost[] = [];
const data = 'azureml-blobstore';

beforeAll(async () => {
  location = mkdtempSync(path.join(os.tmpdir(), 'mdc-append-crash-'));
  stack = await startStack({ host: false, location });
  producer = new EventHubProducerClient(stack.eventHubConnectionString, stack.hubName);
}, 90_000);
afterEach(async () => {
  for (const host of hosts.splice(0)) {
    host.kill('SIGKILL');
    await host.exited;
  }
});
afterAll(async () => {
  await producer?.close();
  await stack?.stop();
  rmSync(location, { recursive: true, force: true });
});

function events(root: string, count: number): HubEvent[] {
  return Array.from({ length: count }, (_, i) =>
    hubEvent({ correlationid: randomUUID(), target: { container: data, path: root, rollingRate: 'Minute' }, payload: { kind: 'inline', data: [{ i }] } }),
  );
}

async function send(bodies: HubEvent[], perBatch = 25): Promise<void> {
  for (let i = 0; i < bodies.length; i += perBatch) {
    const batch = await producer.createBatch({ partitionKey: 'ep/blue' });
    for (const body of bodies.slice(i, i + perBatch)) if (!batch.tryAdd({ body })) throw new Error('batch full');
    await producer.sendBatch(batch);
  }
}

async function ids(container: ContainerClient, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix })) {
    const text = (await container.getBlobClient(blob.name).downloadToBuffer()).toString('utf8');
    for (const line of text.split('\n')) if (line !== '') found.push((JSON.parse(line) as { id: string }).id);
  }
  return found;
}

async function deadLetters(): Promise<number> {
  const system = stack.blobService.getContainerClient('mdc-system');
  if (!(await system.exists())) return 0;
  return (await ids(system, 'deadletter/').catch(() => [])).length;
}

/** Waits until every sent event has a line, then checks each has exactly one and nothing was dead-lettered. */
async function expectEachWrittenOnce(container: ContainerClient, root: string, sent: HubEvent[], timeoutMs: number): Promise<void> {
  const written = await eventually('every event written', async () => {
    const found = await ids(container, root);
    return found.length >= sent.length ? found : undefined;
  }, { timeoutMs });
  expect(written).toHaveLength(sent.length);
  expect(new Set(written)).toEqual(new Set(sent.map((e) => e.id)));
  expect(await deadLetters()).toBe(0);
}

async function host(env: Record<string, string> = {}): Promise<SpawnedHost> {
  const started = await spawnHost({ ...stack.env, ...env }, { timeoutMs: 60_000 });
  hosts.push(started);
  return started;
}

describe('append exactly once under faults', () => {
  it('writes every event once when the host is killed after a write and before its checkpoint', async () => {
    const root = `crash-${randomUUID().slice(0, 8)}`;
    const sent = events(root, 200);
    const container = stack.blobService.getContainerClient(data);
    const doomed = await host({ MDC_FAULT_AFTER_WRITE: 'exit' });
    await send(sent);
    expect(await doomed.exited).toBe('SIGKILL');
    // The kill came after a commit: some lines are there, and their batch was never checkpointed.
    expect((await ids(container, root)).length).toBeGreaterThan(0);

    await host();
    await expectEachWrittenOnce(container, root, sent, 60_000);
  }, 120_000);

  it('writes every event once when storage goes away mid-stream and comes back', async () => {
    const root = `outage-${randomUUID().slice(0, 8)}`;
    const sent = events(root, 300);
    const container = stack.blobService.getContainerClient(data);
    const running = await host();
    await send(sent.slice(0, 100));
    await eventually('the first lines', async () => (await ids(container, root)).length > 0, { timeoutMs: 60_000 });

    const seen = running.output().length;
    await stack.azurite.stop();
    await send(sent.slice(100));
    // Keep storage down until the host has felt it.
    await eventually('the host to meet the outage', () => /ECONNREFUSED|Failed/.test(running.output().slice(seen)), { timeoutMs: 60_000 });
    await stack.azurite.start();

    await expectEachWrittenOnce(container, root, sent, 90_000);
  }, 180_000);
});
