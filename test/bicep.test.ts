import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectionNames, hostSettingNames, readSettings, requiredSettings } from '../shared/settings';
import localSettings from '../local.settings.json';

// No Bicep CLI can be installed here, so these tests read the templates as text: a small structural checker
// stands in for `bicep build`, and the settings and role assignments are held against the code and the
// official built-in role ids.

const bicepDir = path.resolve(__dirname, '../bicep');

/** Official built-in role ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles, FACTS.md). */
const builtInRoles: Record<string, string> = {
  'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  'Azure Event Hubs Data Sender': '2b629674-e913-4c01-ae53-ef4638d8f975',
  'Azure Event Hubs Data Receiver': 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde',
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
  'AzureML Data Scientist': 'f6c7c914-8db3-469d-8ca1-694a8f32e121',
};

// ---------------------------------------------------------------------------------------------------------
// A structural reader for Bicep: enough to find declarations, blocks and object keys, not a full parser.

interface Scanned {
  /** The source with comments and literal string characters blanked (quotes, `${...}` and newlines kept). */
  code: string;
  problems: string[];
}

const closers: Record<string, string> = { '(': ')', '[': ']', '{': '}', '${': '}' };

function lineOf(text: string, at: number): number {
  let line = 1;
  for (let i = 0; i < at && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

function scanBicep(source: string): Scanned {
  const out = source.split('');
  const problems: string[] = [];
  const stack: { open: string; at: number }[] = [];
  const blank = (from: number, to: number) => {
    for (let k = from; k < to && k < out.length; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  let inString = false;
  let stringStart = 0;
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (inString) {
      if (c === '\\') {
        blank(i, i + 2);
        i += 2;
      } else if (c === '$' && next === '{') {
        stack.push({ open: '${', at: i });
        inString = false;
        i += 2;
      } else if (c === "'") {
        inString = false;
        i++;
      } else if (c === '\n') {
        problems.push(`line ${lineOf(source, stringStart)}: unterminated string`);
        inString = false;
        i++;
      } else {
        blank(i, i + 1);
        i++;
      }
      continue;
    }
    if (source.startsWith("'''", i)) {
      const end = source.indexOf("'''", i + 3);
      if (end < 0) {
        problems.push(`line ${lineOf(source, i)}: unterminated multi-line string`);
        blank(i + 3, source.length);
        break;
      }
      blank(i + 3, end);
      i = end + 3;
    } else if (c === "'") {
      inString = true;
      stringStart = i;
      i++;
    } else if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? source.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) {
        problems.push(`line ${lineOf(source, i)}: unterminated comment`);
        blank(i, source.length);
        break;
      }
      blank(i, end + 2);
      i = end + 2;
    } else if (c === '(' || c === '[' || c === '{') {
      stack.push({ open: c, at: i });
      i++;
    } else if (c === ')' || c === ']' || c === '}') {
      const top = stack.pop();
      if (!top || closers[top.open] !== c) {
        const what = top ? `'${top.open}' opened on line ${lineOf(source, top.at)}` : 'nothing';
        problems.push(`line ${lineOf(source, i)}: '${c}' closes ${what}`);
      } else if (top.open === '${') {
        inString = true;
      }
      i++;
    } else {
      i++;
    }
  }
  if (inString) problems.push(`line ${lineOf(source, stringStart)}: unterminated string`);
  for (const open of stack) problems.push(`line ${lineOf(source, open.at)}: '${open.open}' is never closed`);
  return { code: out.join(''), problems };
}

/** Index of the bracket closing the one at `open` (in scanned code), or -1. */
function matchingClose(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** Where an expression starting at `start` ends: the first newline outside brackets. */
function expressionEnd(code: string, start: number): number {
  let depth = 0;
  for (let i = start; i < code.length; i++) {
    const c = code[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '\n' && depth <= 0) return i;
  }
  return code.length;
}

class BicepFile {
  readonly code: string;
  readonly problems: string[];
  constructor(
    readonly file: string,
    readonly source: string,
  ) {
    ({ code: this.code, problems: this.problems } = scanBicep(source));
  }

  /** The source text of a string literal whose opening quote is at `quote`. */
  stringAt(quote: number): string {
    const end = this.code.indexOf("'", quote + 1);
    return this.source.slice(quote + 1, end);
  }

  text(from: number, to: number): string {
    return this.source.slice(from, to).trim();
  }

  params(): { name: string; required: boolean; secure: boolean; at: number }[] {
    const found: { name: string; required: boolean; secure: boolean; at: number }[] = [];
    for (const m of this.code.matchAll(/^[ \t]*((?:@[\w.]+\([^)\n]*\)[ \t]*)*)param[ \t]+(\w+)[ \t]+([^=\n]*?)[ \t]*(=.*)?$/gm)) {
      const before = this.code.slice(0, m.index).split('\n');
      before.pop();
      const decorators = [m[1]!];
      while (before.length && /^\s*@|^\s*[\])\d'\s]*$/.test(before[before.length - 1]!) && before[before.length - 1]!.trim() !== '') {
        decorators.push(before.pop()!);
      }
      found.push({
        name: m[2]!,
        required: m[4] === undefined,
        secure: decorators.some((d) => /@secure\(\)/.test(d)),
        at: m.index!,
      });
    }
    return found;
  }

  outputs(): string[] {
    return [...this.code.matchAll(/^[ \t]*output[ \t]+(\w+)[ \t]/gm)].map((m) => m[1]!);
  }

  vars(): Map<string, string> {
    const vars = new Map<string, string>();
    for (const m of this.code.matchAll(/^[ \t]*var[ \t]+(\w+)[ \t]*=/gm)) {
      const start = m.index! + m[0].length;
      vars.set(m[1]!, this.source.slice(start, expressionEnd(this.code, start)).trim());
    }
    return vars;
  }

  /** Declarations with a quoted target (`module x './m.bicep'`, `resource x 'Type@ver'`) and their body. */
  blocks(kind: 'module' | 'resource'): { symbol: string; target: string; existing: boolean; body: number; end: number }[] {
    const blocks = [];
    for (const m of this.code.matchAll(new RegExp(`^[ \\t]*${kind}[ \\t]+(\\w+)[ \\t]+'`, 'gm'))) {
      const quote = m.index! + m[0].length - 1;
      const target = this.stringAt(quote);
      const eq = this.code.indexOf('=', this.code.indexOf("'", quote + 1));
      const header = this.code.slice(this.code.indexOf("'", quote + 1) + 1, eq);
      const body = this.code.indexOf('{', eq);
      blocks.push({ symbol: m[1]!, target, existing: /\bexisting\b/.test(header), body, end: matchingClose(this.code, body) });
    }
    return blocks;
  }

  /** The entries of the object literal whose `{` is at `open`, keyed as written (quotes removed). */
  entries(open: number): Map<string, { text: string; at: number }> {
    const close = matchingClose(this.code, open);
    const entries = new Map<string, { text: string; at: number }>();
    let depth = 0;
    let lineDepth = 0;
    let lineStart = open + 1;
    for (let i = open + 1; i <= close; i++) {
      const c = this.code[i];
      if (c === '\n' || i === close) {
        if (lineDepth === 0) {
          const line = this.code.slice(lineStart, i);
          const m = /^[ \t]*(\w+|'[^']*')[ \t]*:/.exec(line);
          if (m) {
            const keyText = this.source.slice(lineStart, lineStart + m[0].length).trim().replace(/:$/, '').trim();
            const at = lineStart + m[0].length;
            const end = expressionEnd(this.code, at);
            entries.set(keyText.replace(/^'|'$/g, ''), { text: this.source.slice(at, Math.min(end, close)).trim(), at });
          }
        }
        lineStart = i + 1;
        lineDepth = depth;
      }
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') depth--;
    }
    return entries;
  }

  /** A top-level property of a block body, e.g. `scope` or `params`. */
  property(body: number, key: string): { text: string; at: number } | undefined {
    return this.entries(body).get(key);
  }
}

type ReadText = (file: string) => string | undefined;

const readFromDisk: ReadText = (file) => (existsSync(file) ? readFileSync(file, 'utf8') : undefined);

/** Everything `bicep build` would catch that text can show: balance, module paths and params, params used. */
function checkBicep(file: string, read: ReadText = readFromDisk): string[] {
  const source = read(file);
  if (source === undefined) return [`${file}: not found`];
  const bicep = new BicepFile(file, source);
  const problems = bicep.problems.map((p) => `${path.basename(file)} ${p}`);
  if (problems.length) return problems;

  for (const param of bicep.params()) {
    const uses = [...bicep.code.matchAll(new RegExp(`(?<![.\\w])${param.name}\\b`, 'g'))].filter((m) => {
      const lineStart = bicep.code.lastIndexOf('\n', m.index! - 1) + 1;
      const isKey = bicep.code.slice(lineStart, m.index).trim() === '' && /^\w+\s*:/.test(bicep.code.slice(m.index));
      const isDeclaration = /^\s*(?:@[\w.]+\([^)\n]*\)\s*)*param\s+$/.test(bicep.code.slice(lineStart, m.index));
      return !isKey && !isDeclaration;
    });
    if (uses.length === 0) problems.push(`${path.basename(file)}: param ${param.name} is never used`);
  }

  const modules = new Map<string, BicepFile>();
  for (const mod of bicep.blocks('module')) {
    if (mod.target.startsWith('br:') || mod.target.startsWith('br/') || mod.target.startsWith('ts:')) continue;
    const targetFile = path.resolve(path.dirname(file), mod.target);
    const targetSource = read(targetFile);
    if (targetSource === undefined) {
      problems.push(`${path.basename(file)}: module ${mod.symbol} points at ${mod.target}, which does not exist`);
      continue;
    }
    const target = new BicepFile(targetFile, targetSource);
    modules.set(mod.symbol, target);
    const paramsEntry = bicep.property(mod.body, 'params');
    const passed = paramsEntry ? [...bicep.entries(bicep.code.indexOf('{', paramsEntry.at)).keys()] : [];
    const declared = target.params();
    for (const p of declared) {
      if (p.required && !passed.includes(p.name)) problems.push(`${path.basename(file)}: module ${mod.symbol} does not pass required param ${p.name}`);
    }
    for (const name of passed) {
      if (!declared.some((p) => p.name === name)) problems.push(`${path.basename(file)}: module ${mod.symbol} passes ${name}, which ${mod.target} does not declare`);
    }
  }
  for (const m of bicep.code.matchAll(/\b(\w+)\.outputs\.(\w+)/g)) {
    const target = modules.get(m[1]!);
    if (target && !target.outputs().includes(m[2]!)) {
      problems.push(`${path.basename(file)}: ${m[1]}.outputs.${m[2]} is not an output of ${path.basename(target.file)}`);
    }
  }
  return problems;
}

function bicepFiles(dir: string = bicepDir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? bicepFiles(full) : [full];
  });
}

function load(relative: string): BicepFile {
  const file = path.join(bicepDir, relative);
  return new BicepFile(file, readFileSync(file, 'utf8'));
}

// ---------------------------------------------------------------------------------------------------------
// The app settings main.bicep gives the function app, resolved through the vars they are built from.

function appSettingsOf(main: BicepFile): Map<string, string> {
  const app = main.blocks('module').find((m) => m.target.endsWith('function-app.bicep'));
  if (!app) throw new Error('main.bicep has no function-app module');
  const params = main.property(app.body, 'params')!;
  const expression = main.entries(main.code.indexOf('{', params.at)).get('appSettings')!.text;
  const vars = main.vars();
  const settings = new Map<string, string>();
  const seen = new Set<string>();
  const collect = (text: string) => {
    for (const m of text.matchAll(/^[ \t]*([A-Za-z_]\w*)[ \t]*:[ \t]*(.+)$/gm)) settings.set(m[1]!, m[2]!.trim());
    for (const m of text.matchAll(/\b([A-Za-z_]\w*)\b/g)) {
      const name = m[1]!;
      if (vars.has(name) && !seen.has(name)) {
        seen.add(name);
        collect(vars.get(name)!);
      }
    }
  };
  collect(expression);
  return settings;
}

/** A value of the right shape for each setting the template computes at deployment time. */
function sampleValue(name: string, expression: string): string {
  const literal = /^'([^'\\$]*)'$/.exec(expression);
  if (literal) return literal[1]!;
  if (name.endsWith('__blobServiceUri')) return 'https://account.blob.core.windows.net/';
  if (name.endsWith('__fullyQualifiedNamespace')) return 'mdc-ehns.servicebus.windows.net';
  if (name.endsWith('__clientId')) return '00000000-0000-0000-0000-0000000000c1';
  const samples: Record<string, string> = {
    MDC_EVENTHUB_NAME: 'mdc-events',
    MDC_EVENTHUB_CONSUMER_GROUP: 'append',
    MDC_ADMIN_KEY: 'a-deployed-admin-key-0123456789',
    MDC_DATASTORES: '{"workspaceblobstore":"azureml-blobstore"}',
    MDC_SYSTEM_CONTAINER: 'mdc-system',
    MDC_AML_WORKSPACE_ID: '/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1',
    APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000',
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=00000000-0000-0000-0000-0000000000c1;Authorization=AAD',
  };
  const sample = samples[name];
  if (sample === undefined) throw new Error(`no sample value for ${name}: add one to this test`);
  return sample;
}

function deployedEnv(settings: Map<string, string>): Record<string, string> {
  return Object.fromEntries([...settings].map(([name, expression]) => [name, sampleValue(name, expression)]));
}

/** Identity-based endpoint setting of each connection, as the host and shared/settings.ts name them. */
const endpointSuffix: Record<string, string> = {
  [connectionNames.storage]: '__blobServiceUri',
  [connectionNames.eventHubs]: '__fullyQualifiedNamespace',
  [connectionNames.hostStorage]: '__blobServiceUri',
};

describe('the structural checker', () => {
  const files = (entries: Record<string, string>): ReadText => (file) => entries[path.basename(file)];

  it('accepts braces inside strings, interpolation, escapes and comments', () => {
    const read = files({
      'ok.bicep': [
        "param name string // a { in a comment",
        "/* ] ) } */",
        "var text = 'it\\'s {not} a brace: ${toUpper(name)}'",
        "var multi = '''",
        "  { unbalanced inside a multi-line string",
        "'''",
        'output text string = text',
        'output multi string = multi',
      ].join('\n'),
    });
    expect(checkBicep('/x/ok.bicep', read)).toEqual([]);
  });

  it.each([
    ['an unclosed brace', 'param a string\nvar b = {\n  c: a\n', "'{' is never closed"],
    ['a bracket closed by a brace', 'param a string\nvar b = [\n  a\n}\n', "'}' closes '['"],
    ['an unterminated string', "param a string\nvar b = 'abc\nvar c = a\n", 'unterminated string'],
    ['an unused param', 'param used string\nparam unused int = 1\noutput o string = used\n', 'param unused is never used'],
  ])('reports %s', (_, source, problem) => {
    const problems = checkBicep('/x/bad.bicep', files({ 'bad.bicep': source }));
    expect(problems.join('\n')).toContain(problem);
  });

  it('reports a missing module, a missing required param, an unknown param and an unknown output', () => {
    const read = files({
      'main.bicep': [
        "module gone './gone.bicep' = {",
        "  name: 'gone'",
        '}',
        "module child './child.bicep' = {",
        "  name: 'child'",
        '  params: {',
        "    optional: 'x'",
        "    typo: 'y'",
        '  }',
        '}',
        'output o string = child.outputs.nope',
      ].join('\n'),
      'child.bicep': "param needed string\nparam optional string = 'd'\noutput name string = '${needed}${optional}'\n",
    });
    const problems = checkBicep('/x/main.bicep', read).join('\n');
    expect(problems).toContain('module gone points at ./gone.bicep, which does not exist');
    expect(problems).toContain('module child does not pass required param needed');
    expect(problems).toContain('module child passes typo, which ./child.bicep does not declare');
    expect(problems).toContain('child.outputs.nope is not an output of child.bicep');
  });
});

describe('bicep/ templates are well formed', () => {
  const templates = bicepFiles().filter((f) => f.endsWith('.bicep'));

  it('has main.bicep at resource-group scope and its modules', () => {
    const names = templates.map((f) => path.relative(bicepDir, f)).sort();
    expect(names).toContain('main.bicep');
    expect(load('main.bicep').source).toMatch(/^targetScope = 'resourceGroup'$/m);
    expect(names.filter((n) => n.startsWith('modules'))).not.toHaveLength(0);
  });

  it.each(bicepFiles().filter((f) => f.endsWith('.bicep')).map((f) => [path.relative(bicepDir, f), f]))('%s passes the structural check', (_, file) => {
    expect(checkBicep(file)).toEqual([]);
  });

  it('main.bicepparam assigns only declared params and every required one, the admin key from the environment', () => {
    const params = new BicepFile('main.bicepparam', readFileSync(path.join(bicepDir, 'main.bicepparam'), 'utf8'));
    expect(params.problems).toEqual([]);
    expect(params.source).toMatch(/^using '\.\/main\.bicep'$/m);
    const assigned = new Map([...params.code.matchAll(/^param[ \t]+(\w+)[ \t]*=[ \t]*(.*)$/gm)].map((m) => [m[1]!, params.source.slice(m.index!).split('\n')[0]!]));
    const declared = load('main.bicep').params();
    for (const name of assigned.keys()) expect(declared.map((p) => p.name), `param ${name}`).toContain(name);
    for (const p of declared.filter((d) => d.required)) expect([...assigned.keys()], `required param ${p.name}`).toContain(p.name);
    expect(assigned.get('adminKey')).toMatch(/=\s*readEnvironmentVariable\('MDC_ADMIN_KEY'\)\s*$/);
  });

  it('uses released API versions, not previews', () => {
    for (const file of templates) {
      for (const block of new BicepFile(file, readFileSync(file, 'utf8')).blocks('resource')) {
        expect(block.target, `${path.basename(file)} ${block.symbol}`).toMatch(/^[\w.]+(\/[\w.]+)*@\d{4}-\d{2}-\d{2}$/);
      }
    }
  });
});

describe('app settings in main.bicep follow shared/settings.ts', () => {
  const main = load('main.bicep');
  const settings = appSettingsOf(main);
  const names = [...settings.keys()];

  it('sets every required setting, each connection in its identity-based form with the user-assigned identity', () => {
    for (const name of requiredSettings.values) expect(names, name).toContain(name);
    for (const connection of requiredSettings.connections) {
      expect(names, `${connection} must not be a connection string`).not.toContain(connection);
      expect(names).toContain(`${connection}${endpointSuffix[connection]}`);
      expect(settings.get(`${connection}__credential`)).toBe("'managedidentity'");
      expect(settings.get(`${connection}__clientId`)).toMatch(/^\w+\.outputs\.clientId$/);
    }
    expect(settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING')).toMatch(/^'ClientId=\$\{\w+\.outputs\.clientId\};Authorization=AAD'$/);
  });

  it('gives settings the code reads as identity connections', () => {
    const read = readSettings(deployedEnv(settings));
    expect(read.storage).toMatchObject({ kind: 'identity', credential: 'managedidentity', clientId: expect.any(String) });
    expect(read.eventHubs).toMatchObject({ kind: 'identity', credential: 'managedidentity', clientId: expect.any(String) });
    expect(read.workspace?.workspaceName).toBe('ws1');
  });

  it('sets nothing that neither the code nor the Functions host reads', () => {
    const reads = new Set<string>();
    const env = deployedEnv(settings);
    readSettings(
      new Proxy(env, {
        get(target, key) {
          if (typeof key === 'string') reads.add(key);
          return target[key as string];
        },
      }),
    );
    const unread = names.filter((name) => !reads.has(name) && !(hostSettingNames as readonly string[]).includes(name));
    expect(unread).toEqual([]);
  });

  it('leaves out what Flex Consumption rejects: the runtime is in functionAppConfig', () => {
    for (const name of ['FUNCTIONS_WORKER_RUNTIME', 'FUNCTIONS_EXTENSION_VERSION', 'WEBSITE_RUN_FROM_PACKAGE', 'WEBSITE_CONTENTSHARE', 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING']) {
      expect(names).not.toContain(name);
    }
    const app = load('modules/function-app.bicep');
    expect(app.source).toMatch(/name: 'FC1'/);
    expect(app.source).toMatch(/runtime: \{\s*name: 'node'\s*version: nodeVersion\s*\}/);
    expect(app.source).toMatch(/authentication: \{\s*type: 'UserAssignedIdentity'\s*userAssignedIdentityResourceId: identityId\s*\}/);
  });

  it('takes the admin key from a @secure() parameter and passes it on only through a @secure() one', () => {
    const adminKey = settings.get('MDC_ADMIN_KEY')!;
    expect(main.params().find((p) => p.name === adminKey)).toMatchObject({ secure: true });
    expect(load('modules/function-app.bicep').params().find((p) => p.name === 'appSettings')).toMatchObject({ secure: true });
  });

  it('local.settings.json holds every setting the code requires locally', () => {
    const values = Object.keys(localSettings.Values);
    for (const name of requiredSettings.values) expect(values, name).toContain(name);
    for (const connection of requiredSettings.connections) {
      expect(values.includes(connection) || values.includes(`${connection}${endpointSuffix[connection]}`), connection).toBe(true);
    }
  });
});

describe('role assignments', () => {
  const files = bicepFiles()
    .filter((f) => f.endsWith('.bicep'))
    .map((f) => new BicepFile(f, readFileSync(f, 'utf8')));

  /** Role name → id tables (`var roleIds = { 'Name': 'guid' }`) of one file. */
  const roleTable = (file: BicepFile): Map<string, string> => {
    const text = file.vars().get('roleIds');
    if (!text) return new Map();
    return new Map([...text.matchAll(/^\s*'([^']+)'\s*:\s*'([0-9a-f-]{36})'\s*$/gm)].map((m) => [m[1]!, m[2]!]));
  };

  const assignments = files.flatMap((file) =>
    file
      .blocks('resource')
      .filter((b) => b.target.startsWith('Microsoft.Authorization/roleAssignments@') && !b.existing)
      .map((block) => {
        const properties = file.property(block.body, 'properties')!;
        const props = file.entries(file.code.indexOf('{', properties.at));
        const roleRef = /roleIds\['([^']+)'\]/.exec(props.get('roleDefinitionId')!.text);
        return {
          file,
          symbol: block.symbol,
          role: roleRef ? roleRef[1]! : props.get('roleDefinitionId')!.text,
          id: roleRef ? roleTable(file).get(roleRef[1]!) : undefined,
          name: file.property(block.body, 'name')!.text,
          scope: file.property(block.body, 'scope')?.text,
          principalId: props.get('principalId')!.text,
          principalType: props.get('principalType')?.text,
        };
      }),
  );

  it('names every role by its official built-in id', () => {
    expect(assignments.length).toBeGreaterThan(0);
    for (const file of files) {
      for (const [name, id] of roleTable(file)) expect(id, `${path.basename(file.file)}: ${name}`).toBe(builtInRoles[name]);
    }
    for (const a of assignments) {
      expect(builtInRoles[a.role], `${a.symbol} refers to role ${a.role}`).toBeDefined();
      expect(a.id, `${a.symbol}: ${a.role}`).toBe(builtInRoles[a.role]);
      expect(a.name, a.symbol).toMatch(/^guid\(/);
      expect(a.principalType, a.symbol).toBe("'ServicePrincipal'");
    }
  });

  it('grants every role the collector needs, AzureML Data Scientist only when a workspace is given', () => {
    expect(assignments.map((a) => a.role).sort()).toEqual(Object.keys(builtInRoles).sort());
    const main = load('main.bicep');
    const aml = main.blocks('module').find((m) => m.target.endsWith('aml-role.bicep'))!;
    expect(main.code.slice(aml.body - 60, aml.body)).toMatch(/= if \(!empty\(amlWorkspaceId\)\)/);
  });

  it('has no other GUID in bicep/ than official role ids', () => {
    const official = new Set(Object.values(builtInRoles));
    for (const file of bicepFiles()) {
      for (const m of readFileSync(file, 'utf8').matchAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi)) {
        expect(official.has(m[0].toLowerCase()), `${path.basename(file)}: ${m[0]}`).toBe(true);
      }
    }
  });

  /** The module in main.bicep whose output feeds an app setting, e.g. the account behind MDC_STORAGE. */
  const moduleBehind = (main: BicepFile, setting: string): string => /^(\w+)\.outputs\./.exec(appSettingsOf(main).get(setting)!)![1]!;

  it.each([
    ['Storage Blob Data Contributor', 'dataAccountName', `${connectionNames.storage}__blobServiceUri`],
    ['Storage Blob Data Owner', 'hostAccountName', `${connectionNames.hostStorage}__blobServiceUri`],
  ])('%s targets the account the app uses through %s, for the identity the app runs as', (role, accountParam, setting) => {
    const a = assignments.find((x) => x.role === role)!;
    const rolesFile = a.file;
    // In the roles module: scope is an existing account named by the param, principal the existing identity.
    const scoped = rolesFile.blocks('resource').find((b) => b.symbol === a.scope)!;
    expect(scoped.target).toMatch(/^Microsoft\.Storage\/storageAccounts@/);
    expect(scoped.existing).toBe(true);
    expect(rolesFile.property(scoped.body, 'name')!.text).toBe(accountParam);
    const principal = /^(\w+)\.properties\.principalId$/.exec(a.principalId)![1]!;
    const identity = rolesFile.blocks('resource').find((b) => b.symbol === principal)!;
    expect(identity.target).toMatch(/^Microsoft\.ManagedIdentity\/userAssignedIdentities@/);
    expect(rolesFile.property(identity.body, 'name')!.text).toBe('identityName');

    // In main.bicep: the roles module gets that account and identity from the modules behind the settings.
    const main = load('main.bicep');
    const rolesModule = main.blocks('module').find((m) => path.resolve(bicepDir, m.target) === rolesFile.file)!;
    const passed = main.entries(main.code.indexOf('{', main.property(rolesModule.body, 'params')!.at));
    expect(passed.get(accountParam)!.text).toBe(`${moduleBehind(main, setting)}.outputs.name`);
    const identityModule = moduleBehind(main, `${connectionNames.storage}__clientId`);
    expect(passed.get('identityName')!.text).toBe(`${identityModule}.outputs.name`);
    const app = main.blocks('module').find((m) => m.target.endsWith('function-app.bicep'))!;
    const appParams = main.entries(main.code.indexOf('{', main.property(app.body, 'params')!.at));
    expect(appParams.get('identityId')!.text).toBe(`${identityModule}.outputs.id`);
  });
});

describe('no keys anywhere in bicep/', () => {
  it.each(bicepFiles().map((f) => [path.relative(bicepDir, f), f]))('%s asks for no key and holds none', (_, file) => {
    const text = readFileSync(file, 'utf8');
    for (const pattern of [/listKeys\s*\(/i, /listConnectionStrings?\s*\(/i, /list\w*Sas\s*\(/i, /AccountKey\s*=/i, /SharedAccessKey/i, /SharedAccessSignature/i, /DefaultEndpointsProtocol/i, /authorizationRules/i]) {
      expect(text).not.toMatch(pattern);
    }
  });

  it('turns shared-key and local auth off on every account, namespace and telemetry component it creates', () => {
    let checked = 0;
    for (const file of bicepFiles().filter((f) => f.endsWith('.bicep'))) {
      const bicep = new BicepFile(file, readFileSync(file, 'utf8'));
      for (const block of bicep.blocks('resource').filter((b) => !b.existing)) {
        const propertiesEntry = bicep.property(block.body, 'properties');
        const props = propertiesEntry ? bicep.entries(bicep.code.indexOf('{', propertiesEntry.at)) : new Map<string, { text: string }>();
        const type = block.target.split('@')[0];
        const expected: Record<string, Record<string, string>> = {
          'Microsoft.Storage/storageAccounts': { allowSharedKeyAccess: 'false', allowBlobPublicAccess: 'false', minimumTlsVersion: "'TLS1_2'" },
          'Microsoft.EventHub/namespaces': { disableLocalAuth: 'true' },
          'Microsoft.Insights/components': { DisableLocalAuth: 'true' },
        };
        for (const [key, value] of Object.entries(expected[type!] ?? {})) {
          expect(props.get(key)?.text, `${path.basename(file)} ${block.symbol}.${key}`).toBe(value);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });
});
