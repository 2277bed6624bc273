const utf8 = new TextDecoder();

/**
 * The native request behind an `HttpRequest` whose body the host has already read whole (see
 * `bufferedRequestBodyBytes`). `HttpRequest` only forwards to its native request, and uses `url`, `method`,
 * `headers`, `body`, `bodyUsed`, the body readers and `clone`; so that is what this offers.
 *
 * A fetch `Request` over a buffer builds a byte stream and an abort signal up front, which costs more than the
 * rest of a small `collect` call. Here the first `arrayBuffer()`, `text()` or `json()` answers from the bytes;
 * anything else (`body`, `blob()`, `formData()`, `clone()`, and every read after the first) goes to a real
 * `Request` over the same bytes, made on first need and already consumed if the body was read, so streams, blobs,
 * forms and "body already read" errors are exactly the fetch ones.
 */
export class BufferedRequest {
  readonly url: string;
  #bytes: Buffer;
  #read = false;
  #request: Request | undefined;

  constructor(
    url: string,
    readonly method: string,
    readonly headers: Headers,
    bytes: Buffer,
  ) {
    this.url = new URL(url).href;
    this.#bytes = bytes;
  }

  get body(): ReadableStream<Uint8Array> | null {
    return this.#real().body;
  }

  get bodyUsed(): boolean {
    return this.#request ? this.#request.bodyUsed : this.#read;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    if (!this.#take()) return this.#real().arrayBuffer();
    const bytes = this.#bytes;
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    if (!this.#take()) return this.#real().text();
    return utf8.decode(this.#bytes);
  }

  async json(): Promise<unknown> {
    if (!this.#take()) return this.#real().json();
    return JSON.parse(utf8.decode(this.#bytes));
  }

  blob(): Promise<Blob> {
    return this.#real().blob();
  }

  formData(): Promise<FormData> {
    return this.#real().formData();
  }

  clone(): Request {
    return this.#real().clone();
  }

  /** True when this read may answer from the bytes: nothing has read the body yet. */
  #take(): boolean {
    if (this.#read || this.#request) return false;
    this.#read = true;
    return true;
  }

  #real(): Request {
    if (!this.#request) {
      this.#request = new Request(this.url, { method: this.method, headers: this.headers, body: this.#bytes });
      // Reading starts at once and marks the body used, as it is for a Request whose body was read.
      if (this.#read) this.#request.arrayBuffer().catch(() => undefined);
    }
    return this.#request;
  }
}
