/**
 * The index after the JSON string that starts at `quoteAt` (its opening quote), or -1 when it does not end: its
 * end is the first quote not escaped by an odd run of backslashes. Shared by the scans that read JSON text
 * without parsing it (append's inline data, the read API's lines).
 */
export function stringEnd(text: string, quoteAt: number): number {
  let at = quoteAt + 1;
  for (;;) {
    const quote = text.indexOf('"', at);
    if (quote < 0) return -1;
    let slashes = 0;
    for (let k = quote - 1; text.charCodeAt(k) === 0x5c; k--) slashes++;
    if (slashes % 2 === 0) return quote + 1;
    at = quote + 1;
  }
}
