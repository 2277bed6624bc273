import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../local/ports';
import localSettings from '../local.settings.json';
import { eventually, spawnHost, startStack, type Stack } from './support/stack';

const root = path.resolve(__dirname, '..');

describe('local host as a process', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ host: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('serves the health function, and exits 0 on SIGTERM', async () => {
    const host = await spawnHost(stack.env);
    try {
      const response = await fetch(`${host.url}/api/health`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'ok', storage: 'up', eventHubs: 'up' });
    } finally {
      host.kill('SIGTERM');
    }
    expect(await host.exited).toBe(0);
  });
});

/** Runs `npm start`'s entry on free ports and its own data folder, with none of this process's settings. */
async function startEntry(env: Record<string, string>) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(MDC_|AzureWebJobs)/.test(name)),
  ) as Record<string, string>;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'local', 'start.ts')], {
    cwd: root,
    env: { ...clean, ...env, MDC_LOCAL_LOG_LEVEL: 'warning' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, exited, output: () => output };
}

describe('npm start', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mdc-start-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('boots Azurite, the emulator and the host, stops on SIGINT, and a second start finds the earlier data', async () => {
    const env = {
      MDC_LOCAL_HOST_PORT: String(await freePort()),
      MDC_LOCAL_AZURITE_PORT: String(await freePort()),
      MDC_LOCAL_EVENTHUBS_PORT: String(await freePort()),
      MDC_LOCAL_DATA: dataDir,
    };
    const api = `http://127.0.0.1:${env.MDC_LOCAL_HOST_PORT}/api`;
    const admin = { 'x-mdc-admin-key': localSettings.Values.MDC_ADMIN_KEY };

    const first = await startEntry(env);
    try {
      await eventually('health 200 from npm start', async () => (await fetch(`${api}/health`)).status === 200, { timeoutMs: 45_000 });
      // HTTP answers as soon as the server listens; the banner follows once the triggers have started too.
      await eventually('the banner', () => first.output().includes(`curl ${api}/health`), { timeoutMs: 45_000 });
      const put = await fetch(`${api}/deployments/start-test/blue`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ data_collector: { collections: { model_inputs: { enabled: 'True' } } } }),
      });
      expect(put.status).toBe(201);
    } finally {
      first.child.kill('SIGINT');
    }
    expect(await first.exited, first.output()).toBe(0);

    const second = await startEntry(env);
    try {
      await eventually('health 200 after a restart', async () => (await fetch(`${api}/health`)).status === 200, { timeoutMs: 45_000 });
      const get = await fetch(`${api}/deployments/start-test/blue`, { headers: admin });
      expect(get.status).toBe(200);
    } finally {
      second.child.kill('SIGINT');
    }
    expect(await second.exited, second.output()).toBe(0);
  });
});
