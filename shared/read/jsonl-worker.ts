import { parentPort } from 'node:worker_threads';
import { JsonlChunks, type JsonlPiece, type LineWindow } from './jsonl-chunks';

/** The worker side of `jsonl-threads.ts`: one `JsonlChunks` per open blob, answers in the order asked. */

export type JsonlRequest =
  | { id: number; kind: 'open'; window: LineWindow }
  | { id: number; kind: 'chunk'; chunk: Uint8Array; batch: boolean }
  | { id: number; kind: 'end' }
  | { id: number; kind: 'close' };

export interface JsonlAnswer {
  id: number;
  pieces?: JsonlPiece[];
  error?: string;
}

const open = new Map<number, JsonlChunks>();

function answer(id: number, work: () => JsonlPiece[]): void {
  let pieces: JsonlPiece[];
  try {
    pieces = work();
  } catch (error) {
    parentPort!.postMessage({ id, error: error instanceof Error ? error.message : String(error) } satisfies JsonlAnswer);
    return;
  }
  const transfer = pieces.flatMap((p) => (p.kind === 'rows' ? [p.bytes.buffer as ArrayBuffer] : []));
  parentPort!.postMessage({ id, pieces } satisfies JsonlAnswer, transfer);
}

parentPort!.on('message', (request: JsonlRequest) => {
  switch (request.kind) {
    case 'open':
      open.set(request.id, new JsonlChunks(request.window));
      return;
    case 'chunk':
      answer(request.id, () => open.get(request.id)!.push(request.chunk, request.batch));
      return;
    case 'end':
      answer(request.id, () => {
        const chunks = open.get(request.id)!;
        open.delete(request.id);
        return chunks.end();
      });
      return;
    case 'close':
      open.delete(request.id);
      return;
  }
});
