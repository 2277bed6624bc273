import path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running the module `name` beside `callerFile` (the caller's `__filename`): its `.js` when the
 * caller is compiled, its `.ts` through tsx's require hook when the caller itself runs as TypeScript (under tsx
 * or vitest).
 */
export function startWorkerFile(callerFile: string, name: string, options: WorkerOptions = {}): Worker {
  const typescript = callerFile.endsWith('.ts');
  const file = path.join(path.dirname(callerFile), `${name}.${typescript ? 'ts' : 'js'}`);
  return typescript ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { ...options, eval: true }) : new Worker(file, options);
}
