import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** BENCHMARKS.md at the repository's root. */
export const benchmarksFile = path.resolve(__dirname, '..', 'BENCHMARKS.md');

/**
 * Replaces one bench's section of BENCHMARKS.md, between its `<!-- bench:<name> -->` markers, or adds it at the
 * end; every other section stays as it is. Markers rather than headings, so that no bench can eat its neighbour.
 */
export function writeBenchSection(name: string, markdown: string): void {
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const block = `${open}\n${markdown.trim()}\n${close}`;
  const current = existsSync(benchmarksFile) ? readFileSync(benchmarksFile, 'utf8') : '# Benchmarks\n';
  const from = current.indexOf(open);
  const to = current.indexOf(close);
  const next = from >= 0 && to > from ? current.slice(0, from) + block + current.slice(to + close.length) : `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(benchmarksFile, next);
}
