// isolation: JsonlChunks over 256 KiB batches of bench-like lines, in this thread; CPU of the whole process
import { randomUUID } from 'node:crypto';
import { JsonlChunks } from '../shared/read/jsonl-chunks';
function line(time: string, n: number): string {
  const rows = [];
  for (let r = 0; r < 5; r++) rows.push({ AGE: 20 + ((n + r) % 50), LIMIT_BAL: 1000 * ((n * 7 + r) % 900), SEX: r % 2 ? 'F' : 'M', EDUCATION: (n + r) % 4, PAY_0: (r % 3) - 1, BILL_AMT1: (n % 10000) / 3 });
  const data = JSON.stringify(rows); const id = randomUUID();
  return JSON.stringify({ specversion: '1.0', id, source: `/subscriptions//resourceGroups//providers/Microsoft.MachineLearningServices/workspaces//onlineEndpoints/ep/deployments/blue`, type: 'azureml.inference.model_inputs', datacontenttype: 'application/json', time, data: rows, correlationid: id, xrequestid: id, modelversion: 'default', collectdatatype: 'pandas.core.frame.DataFrame', agent: 'bench', contentrange: `bytes 0-${data.length - 1}/${data.length}` });
}
const parts: string[] = []; let size = 0; let n = 0;
while (size < 64 * 1024 * 1024) { const t = line('2024-03-05T00:00:01Z', n++) + '\n'; parts.push(t); size += t.length; }
const blob = Buffer.from(parts.join(''));
const reps = Number(process.env.REPS ?? 8);
const mode = process.env.MODE ?? 'all';
const c0 = process.cpuUsage(); const t0 = performance.now(); let out = 0;
for (let rep = 0; rep < reps; rep++) {
  const chunks = new JsonlChunks({ whole: true, from: 0, to: 0 });
  for (let at = 0; at < blob.length; at += 256 * 1024) {
    const b = Buffer.allocUnsafeSlow(Math.min(256 * 1024, blob.length - at)); blob.copy(b, 0, at, at + b.length);
    for (const p of chunks.push(b)) if (p.kind === 'rows') out += p.bytes.byteLength;
  }
  for (const p of chunks.end()) if (p.kind === 'rows') out += p.bytes.byteLength;
}
const wall = (performance.now() - t0) / 1000; const c = process.cpuUsage(c0);
const thread = Number(require('node:fs').readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((a: number, b: string) => a + Number(b), 0)) / 100;
console.log(`${(reps * 64)} MB in ${wall.toFixed(2)} s = ${(reps * 64 / wall).toFixed(0)} MB/s; process CPU ${((c.user + c.system) / 1e6).toFixed(2)} s (main thread total incl. setup ${thread.toFixed(2)}); out ${(out / 1e6).toFixed(0)} MB`);
