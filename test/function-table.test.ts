import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tables from '../local/functions';

/**
 * `func start` binds what functions/*.ts register with `app.*`; `npm start` binds local/functions.ts. This
 * holds the two to the same functions, under the same names, with the very same options objects.
 */

const kinds = { http: 'httpFunctions', eventHub: 'eventHubFunctions', timer: 'timerFunctions' } as const;
type Kind = keyof typeof kinds;

interface Registration {
  file: string;
  kind: Kind;
  name: string;
  options: unknown;
}

const dir = path.resolve(__dirname, '..', 'functions');
const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));

async function registrations(): Promise<{ found: Registration[]; unsupported: string[] }> {
  const found: Registration[] = [];
  const unsupported: string[] = [];
  for (const file of files) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    const module = (await import(path.join(dir, file))) as Record<string, unknown>;
    for (const call of source.matchAll(/\bapp\.(\w+)\(([^)]*)\)/g)) {
      const [text, method, args] = call;
      // Host-wide configuration, not a function.
      if (method === 'setup' || method === 'hook') continue;
      const parsed = /^\s*['"]([^'"]+)['"]\s*,\s*([A-Za-z_$][\w$]*)\s*$/.exec(args!);
      if (!(method! in kinds) || !parsed) {
        unsupported.push(`${file}: ${text} (use app.http/eventHub/timer('<name>', <exported options>))`);
        continue;
      }
      found.push({ file, kind: method as Kind, name: parsed[1]!, options: module[parsed[2]!] });
    }
  }
  return { found, unsupported };
}

describe('function table', () => {
  let found: Registration[] = [];
  let unsupported: string[] = [];
  beforeAll(async () => {
    ({ found, unsupported } = await registrations());
  });

  it('finds the registrations, each in the form the local host can bind', () => {
    expect(found.length).toBeGreaterThan(0);
    expect(unsupported).toEqual([]);
    for (const r of found) expect(r.options, `${r.file}: ${r.name}'s options are not exported`).toBeDefined();
  });

  it('every app.* registration is in local/functions.ts under the same name with the same options', () => {
    for (const r of found) {
      const table = tables[kinds[r.kind]] as Record<string, unknown>;
      expect(table[r.name], `${r.file}: app.${r.kind}('${r.name}') is missing from ${kinds[r.kind]} in local/functions.ts`).toBe(r.options);
    }
  });

  it('every entry of local/functions.ts is registered with app.* under the same name', () => {
    for (const [kind, tableName] of Object.entries(kinds) as [Kind, (typeof kinds)[Kind]][]) {
      for (const [name, options] of Object.entries(tables[tableName] as Record<string, unknown>)) {
        const match = found.find((r) => r.kind === kind && r.name === name);
        expect(match, `${tableName}.${name} has no app.${kind}('${name}', ...) in functions/`).toBeDefined();
        expect(match!.options).toBe(options);
      }
    }
  });
});
