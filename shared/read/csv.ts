/**
 * RFC 4180 CSV: a field is quoted when it holds a comma, a quote, CR or LF, and quotes are doubled. Lines end
 * with CRLF as the RFC says. Objects and arrays are written as their JSON text; null and missing are empty.
 */

const needsQuotes = /[",\r\n]/;

export function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return needsQuotes.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: readonly unknown[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += ',';
    line += csvField(values[i]);
  }
  return `${line}\r\n`;
}
