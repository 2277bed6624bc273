import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The Python client's own unittest suite (`python3 -m unittest discover -s sdk/python`), run from `npm test`
 * so that CI counts it: one test here per Python test, each green only if Python said `ok`.
 */

const root = path.resolve(__dirname, '..');
const run = spawnSync('python3', ['-m', 'unittest', 'discover', '-v', '-s', 'sdk/python'], {
  cwd: root,
  encoding: 'utf8',
  timeout: 120_000,
  env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
});
const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
// unittest -v prints "test_name (module.Class.test_name) ... ok|FAIL|ERROR|skipped ..." per test.
const results = [...output.matchAll(/^(test\w*) \(([\w.]+)\)(?:\n.*?)?\s\.\.\.\s(\w+)/gm)].map((m) => ({ name: `${m[2]}: ${m[1]}`, verdict: m[3]! }));

describe('sdk/python (python3 -m unittest)', () => {
  it('runs the whole suite and it passes', () => {
    expect(run.error, String(run.error)).toBeUndefined();
    expect(results.length, output).toBeGreaterThan(0);
    expect(run.status, output).toBe(0);
  });

  it.each(results.length > 0 ? results : [{ name: '(no test found)', verdict: 'missing' }])('$name', ({ verdict }) => {
    expect(verdict, output).toBe('ok');
  });
});
