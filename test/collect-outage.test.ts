import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectOptions } from '../functions/collect';
import { deploymentsOptions } from '../functions/deployments';
import { startEventHubsEmulator, type EventHubsEmulator } from '../local/eventhubs';
import { HubWatcher, send, type RawAnswer } from './support/collect-client';
import { startStack, type Stack } from './support/stack';

let stack: Stack;
let restarted: EventHubsEmulator | undefined;
let ingestKey: string;

const rows = JSON.stringify([{ AGE: 54 }]);
const post = (): Promise<RawAnswer> =>
  send(stack.url, 'POST', '/api/collect/outage-ep/blue/model_inputs', { headers: { 'content-type': 'application/json', 'x-mdc-key': ingestKey }, body: rows });

beforeAll(async () => {
  stack = await startStack({ functions: { httpFunctions: { collect: collectOptions, deployments: deploymentsOptions } } });
  const created = await send(stack.url, 'PUT', '/api/deployments/outage-ep/blue', {
    headers: { 'x-mdc-admin-key': stack.adminKey },
    body: 'data_collector:\n  collections:\n    model_inputs:\n      enabled: true\n',
  });
  expect(created.status).toBe(201);
  ingestKey = created.json.ingestKey;
});

afterAll(async () => {
  await restarted?.close();
  await stack?.stop();
});

describe('Event Hubs outage (SPEC §4)', () => {
  it('answers 503 with Retry-After while the emulator is down, and collects again once it is back', async () => {
    const before = await post();
    expect(before.status).toBe(202);

    await stack.emulator.close();
    const during = await post();
    expect(during.status).toBe(503);
    expect(Number(during.headers['retry-after'])).toBeGreaterThan(0);
    expect(during.json.error.code).toBe('EventHubsUnavailable');

    restarted = await startEventHubsEmulator({ port: stack.emulator.port, dataDir: stack.emulator.dataDir });
    // The producer reconnects by itself; poll until it has.
    const deadline = Date.now() + 45_000;
    let after = await post();
    while (after.status !== 202 && Date.now() < deadline) {
      expect(after.status).toBe(503);
      after = await post();
    }
    expect(after.status).toBe(202);

    const hub = new HubWatcher(restarted.connectionString(), stack.hubName);
    try {
      hub.start();
      const seen = await hub.events([...before.json.ids, ...after.json.ids]);
      expect(seen.map((e) => e.body.payload)).toEqual([
        { kind: 'inline', data: [{ AGE: 54 }] },
        { kind: 'inline', data: [{ AGE: 54 }] },
      ]);
    } finally {
      await hub.close();
    }
  });
});
