/**
 * The client's end of one HTTP/2 connection (RFC 9113), written for `j`: a `j`
 * command makes one or two calls and exits, and Bun's node:http2 with node:net cost
 * it 7 ms of its ~20 (importing them, and running their code once), where this
 * and a native socket cost well under one. It does what a gRPC client needs and
 * no more: requests with a body, responses with headers, messages and trailers,
 * flow control both ways, PING, SETTINGS, GOAWAY, RST_STREAM and CONTINUATION.
 * No server push (refused in our SETTINGS), no priorities.
 *
 * It owns no socket: it writes frames to a ByteTransport and is fed what arrives
 * (receive) and told when the transport is gone (transportClosed).
 */
import { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";

export interface ByteTransport {
  write(bytes: Uint8Array): void;
  close(): void;
}

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PUSH_PROMISE = 5;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

const SETTINGS_ENABLE_PUSH = 2;
const SETTINGS_INITIAL_WINDOW_SIZE = 4;
const SETTINGS_MAX_FRAME_SIZE = 5;

/** RST_STREAM's CANCEL: what this side sends when it gives up on a stream. */
export const CANCEL = 8;
const NO_ERROR = 0;
const PROTOCOL_ERROR = 1;
const FLOW_CONTROL_ERROR = 3;

const DEFAULT_WINDOW = 65_535;
const DEFAULT_MAX_FRAME = 16_384;
/** The largest frame this side takes (its SETTINGS_MAX_FRAME_SIZE stays at the default). */
const MAX_FRAME_IN = DEFAULT_MAX_FRAME;

/** A failure of the connection itself: every stream on it ends with it. */
export class H2ConnectionError extends Error {
  constructor(message: string, readonly code?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type HeaderFields = Record<string, string>;

export class H2Stream {
  /** The response's headers, once they came. */
  headers?: HeaderFields;
  /** The trailers, if the response had any after its headers. */
  trailers?: HeaderFields;
  /** The peer ended its side (END_STREAM). */
  ended = false;
  /** The stream was reset, by the peer or by cancel() (8, CANCEL). */
  rstCode?: number;
  /** The connection failed under the stream. */
  error?: Error;
  /** Called whenever any of the above or the data changes. */
  onChange?: () => void;

  private readonly chunks: Uint8Array[] = [];
  /** Bytes this side may still send on the stream. */
  sendWindow: number;
  /** @internal: what this side has yet to send (flow control holds it back), with what to call once it is out. */
  outbox: { bytes: Uint8Array; sent?: () => void }[] = [];
  /** @internal: this side ends once the outbox is out. */
  endQueued = false;
  /** @internal: this side has ended (END_STREAM sent). */
  localEnded = false;
  /** @internal: bytes handed on and not yet credited back to the peer. */
  uncredited = 0;

  constructor(readonly id: number, private readonly conn: H2ClientConnection, sendWindow: number) {
    this.sendWindow = sendWindow;
  }

  /** Whether nothing more will come: ended, reset or failed. */
  get done(): boolean {
    return this.ended || this.rstCode !== undefined || this.error !== undefined;
  }

  /** The data that arrived since the last take; taking it credits the flow-control windows. */
  take(): Uint8Array[] {
    const out = this.chunks.splice(0);
    let n = 0;
    for (const c of out) n += c.byteLength;
    if (n > 0) this.conn.credit(this, n);
    return out;
  }

  /** Resets the stream with CANCEL, unless it is over already. */
  cancel(): void {
    this.close(CANCEL);
  }

  /**
   * Resets the stream with `code` (0 is NO_ERROR: a stream whose both directions are
   * done, closed before the peer's trailers) unless it is over on both sides already.
   */
  close(code: number): void {
    if (this.rstCode !== undefined || this.error || (this.ended && this.localEnded)) return;
    this.rstCode = code;
    this.conn.reset(this, code);
    this.changed();
  }

  /** Whether data has arrived that take() has not handed on yet. */
  get hasData(): boolean {
    return this.chunks.length > 0;
  }

  /**
   * Sends `parts` on a stream opened with `endStream: false`; resolves once they have
   * gone to the transport (copied: the caller may reuse the buffers then), which flow
   * control may hold back. Rejects if the stream or the connection fails first.
   */
  write(...parts: Uint8Array[]): Promise<void> {
    if (this.endQueued || this.rstCode !== undefined || this.error) return Promise.reject(new H2ConnectionError("the stream is closed", "ERR_STREAM_WRITE_AFTER_END"));
    return new Promise((resolve, reject) => {
      parts.forEach((bytes, i) => this.outbox.push({ bytes, sent: i === parts.length - 1 ? resolve : undefined }));
      this.failSent = reject;
      this.conn.send(this);
    });
  }

  /** Ends this side of the stream once what was written is out. */
  end(): void {
    if (this.endQueued || this.rstCode !== undefined || this.error) return;
    this.endQueued = true;
    this.conn.send(this);
  }

  /** @internal: the writer waiting on the outbox is told the stream failed. */
  failSent?: (e: Error) => void;

  /** @internal */
  pushData(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.changed();
  }

  /** @internal */
  changed(): void {
    this.onChange?.();
  }
}

export interface H2Options {
  /** The receive window, per stream and for the connection (default 2 MiB). */
  windowBytes?: number;
}

export class H2ClientConnection {
  private readonly streams = new Map<number, H2Stream>();
  private nextId = 1;
  private readonly decoder = new HpackDecoder();
  private readonly window: number;
  private sendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  /** Connection-level bytes handed on and not yet credited. */
  private uncredited = 0;
  private buffered?: Uint8Array;
  /** A header block being gathered across CONTINUATION frames. */
  private block?: { stream: number; endStream: boolean; parts: Uint8Array[] };
  private out: Uint8Array[] = [];
  private flushing = false;
  /** Writers to tell once the next flush has copied their bytes out. */
  private afterFlush: (() => void)[] = [];
  /** Set once the connection can take no new streams (GOAWAY, failure, close). */
  private goneAway = false;
  /** Why the connection failed, once it did. */
  failure?: Error;
  /** Settles with `failure` once there is one (a close of our own included). */
  readonly failed: Promise<Error>;
  private onFailed!: (e: Error) => void;

  constructor(private readonly transport: ByteTransport, opts: H2Options = {}) {
    this.failed = new Promise((resolve) => (this.onFailed = resolve));
    this.window = opts.windowBytes ?? 2 * 1024 * 1024;
    const settings = new Uint8Array(12);
    const v = new DataView(settings.buffer);
    v.setUint16(0, SETTINGS_ENABLE_PUSH);
    v.setUint32(2, 0);
    v.setUint16(6, SETTINGS_INITIAL_WINDOW_SIZE);
    v.setUint32(8, this.window);
    this.queue(PREFACE);
    this.frame(SETTINGS, 0, 0, settings);
    if (this.window > DEFAULT_WINDOW) this.windowUpdate(0, this.window - DEFAULT_WINDOW);
  }

  /** Whether a new request would be refused. */
  get closed(): boolean {
    return this.goneAway || this.failure !== undefined;
  }

  /**
   * Opens a stream: `fields` (pseudo-headers first, names in lower case) then `body`,
   * which ends this side of the stream unless `endStream` is false (then write() and
   * end() go on).
   */
  request(fields: readonly (readonly [string, string])[], body: Uint8Array, opts: { endStream?: boolean } = {}): H2Stream {
    if (this.failure) throw this.failure;
    if (this.goneAway) throw new H2ConnectionError("the connection is closing (GOAWAY)", "ERR_HTTP2_GOAWAY_SESSION");
    const stream = new H2Stream(this.nextId, this, this.peerInitialWindow);
    this.nextId += 2;
    this.streams.set(stream.id, stream);
    const block = encodeHeaders(fields);
    const endStream = opts.endStream ?? true;
    const flags = body.byteLength === 0 && endStream ? END_STREAM : 0;
    stream.localEnded = flags === END_STREAM;
    // A header block larger than one frame goes on in CONTINUATION frames.
    const first = block.subarray(0, this.peerMaxFrame);
    this.frame(HEADERS, flags | (first.byteLength === block.byteLength ? END_HEADERS : 0), stream.id, first);
    for (let at = first.byteLength; at < block.byteLength; at += this.peerMaxFrame) {
      const part = block.subarray(at, at + this.peerMaxFrame);
      this.frame(CONTINUATION, at + part.byteLength === block.byteLength ? END_HEADERS : 0, stream.id, part);
    }
    if (body.byteLength > 0) stream.outbox.push({ bytes: body });
    stream.endQueued = endStream;
    if (!stream.localEnded) this.sendPending(stream);
    return stream;
  }

  /** Ends the connection: GOAWAY, then the transport. Open streams fail. */
  close(): void {
    if (!this.failure && !this.goneAway) this.goAway(NO_ERROR);
    this.goneAway = true;
    this.flush();
    this.fail(new H2ConnectionError("the connection was closed", "ERR_HTTP2_SESSION_CLOSED"), false);
    this.transport.close();
  }

  /**
   * Bytes from the transport, which must not reuse their memory afterwards (node:net
   * and Bun's sockets hand each chunk over for good): a DATA frame's payload is passed
   * on as a view of it.
   */
  receive(chunk: Uint8Array): void {
    if (this.failure) return;
    try {
      let data = chunk;
      if (this.buffered) {
        // A frame cut by the last chunk's end: gather that one frame, then read the rest in place.
        const whole = this.gather(data);
        if (!whole) return;
        data = data.subarray(whole.taken);
        this.onBytes(whole.frame);
        if (this.failure) return;
      }
      const at = this.onBytes(data);
      if (this.failure) return;
      if (at < data.byteLength) this.buffered = data.slice(at);
    } catch (e) {
      const why = e instanceof H2ConnectionError ? e : new H2ConnectionError(`the peer broke the HTTP/2 protocol: ${(e as Error).message}`);
      this.goAway(PROTOCOL_ERROR);
      this.fail(why, true);
      return;
    }
    this.flush();
  }

  /** Completes the buffered frame from `chunk`: the frame and how much of `chunk` it took, or undefined while it is still short. */
  private gather(chunk: Uint8Array): { frame: Uint8Array; taken: number } | undefined {
    const have = this.buffered!;
    const headNeed = Math.max(0, 9 - have.byteLength);
    const length = have.byteLength >= 9
      ? frameLength(have, 0)
      : chunk.byteLength >= headNeed ? frameLength(concat([have, chunk.subarray(0, headNeed)]), 0) : -1;
    if (length > MAX_FRAME_IN) throw new H2ConnectionError(`the peer sent a frame of ${length} bytes, over the ${MAX_FRAME_IN} allowed`);
    const total = length < 0 ? 9 : 9 + length;
    const taken = Math.min(total - have.byteLength, chunk.byteLength);
    const frame = concat([have, chunk.subarray(0, taken)]);
    if (length < 0 || frame.byteLength < total) {
      this.buffered = frame;
      return undefined;
    }
    this.buffered = undefined;
    return { frame, taken };
  }

  /** Handles every whole frame in `data`; returns where the first incomplete one starts. */
  private onBytes(data: Uint8Array): number {
    let at = 0;
    while (data.byteLength - at >= 9) {
      const length = frameLength(data, at);
      if (length > MAX_FRAME_IN) throw new H2ConnectionError(`the peer sent a frame of ${length} bytes, over the ${MAX_FRAME_IN} allowed`);
      if (data.byteLength - at < 9 + length) break;
      const type = data[at + 3]!;
      const flags = data[at + 4]!;
      const id = ((data[at + 5]! & 0x7f) << 24) | (data[at + 6]! << 16) | (data[at + 7]! << 8) | data[at + 8]!;
      const payload = data.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      this.onFrame(type, flags, id, payload);
      if (this.failure) break;
    }
    return at;
  }

  /** The transport ended or failed: every open stream fails with `error`. */
  transportClosed(error?: Error): void {
    this.fail(error ?? new H2ConnectionError("the connection closed", "ECONNRESET"), false);
  }

  /** @internal: `n` bytes of `stream` were handed on. */
  credit(stream: H2Stream | undefined, n: number): void {
    this.uncredited += n;
    // Credited in steps of a quarter window: a WINDOW_UPDATE per DATA frame is needless chatter.
    const step = this.window / 4;
    if (this.uncredited >= step) {
      this.windowUpdate(0, this.uncredited);
      this.uncredited = 0;
    }
    if (stream && !stream.done) {
      stream.uncredited += n;
      if (stream.uncredited >= step) {
        this.windowUpdate(stream.id, stream.uncredited);
        stream.uncredited = 0;
      }
    }
    this.flushSoon();
  }

  /** @internal */
  reset(stream: H2Stream, code: number): void {
    this.streams.delete(stream.id);
    this.dropOutbox(stream, new H2ConnectionError("the stream was reset", "ERR_HTTP2_STREAM_ERROR"));
    if (this.failure) return;
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, code);
    this.frame(RST_STREAM, 0, stream.id, payload);
    this.flushSoon();
  }

  private onFrame(type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.block && type !== CONTINUATION) throw new H2ConnectionError("the peer interrupted a header block");
    switch (type) {
      case DATA:
        return this.onData(flags, id, payload);
      case HEADERS: {
        if (id === 0) throw new H2ConnectionError("HEADERS on stream 0");
        let body = this.unpad(flags, payload);
        if (flags & PRIORITY) body = body.subarray(5);
        this.block = { stream: id, endStream: (flags & END_STREAM) !== 0, parts: [body] };
        if (flags & END_HEADERS) this.endBlock();
        return;
      }
      case CONTINUATION:
        if (!this.block || this.block.stream !== id) throw new H2ConnectionError("CONTINUATION without its HEADERS");
        this.block.parts.push(payload);
        if (flags & END_HEADERS) this.endBlock();
        return;
      case RST_STREAM: {
        if (payload.byteLength !== 4) throw new H2ConnectionError("RST_STREAM of the wrong size");
        const stream = this.streams.get(id);
        if (!stream) return;
        this.streams.delete(id);
        stream.rstCode = new DataView(payload.buffer, payload.byteOffset).getUint32(0);
        this.dropOutbox(stream, new H2ConnectionError(`the peer reset the stream (HTTP/2 code ${stream.rstCode})`, "ERR_HTTP2_STREAM_ERROR"));
        stream.changed();
        return;
      }
      case SETTINGS:
        return this.onSettings(flags, id, payload);
      case PUSH_PROMISE:
        throw new H2ConnectionError("the peer pushed a stream, which this client's SETTINGS refused");
      case PING:
        if (payload.byteLength !== 8) throw new H2ConnectionError("PING of the wrong size");
        if (!(flags & ACK)) this.frame(PING, ACK, 0, payload);
        return;
      case GOAWAY: {
        if (payload.byteLength < 8) throw new H2ConnectionError("GOAWAY too short");
        const last = new DataView(payload.buffer, payload.byteOffset).getUint32(0) & 0x7fffffff;
        this.goneAway = true;
        // Streams above the last one the peer processed were never seen: they fail now.
        for (const [sid, stream] of this.streams) {
          if (sid <= last) continue;
          this.streams.delete(sid);
          stream.error = new H2ConnectionError("the connection closed before the call was taken (GOAWAY)", "ERR_HTTP2_GOAWAY_SESSION");
          this.dropOutbox(stream, stream.error);
          stream.changed();
        }
        return;
      }
      case WINDOW_UPDATE: {
        if (payload.byteLength !== 4) throw new H2ConnectionError("WINDOW_UPDATE of the wrong size");
        const increment = new DataView(payload.buffer, payload.byteOffset).getUint32(0) & 0x7fffffff;
        if (id === 0) {
          this.sendWindow += increment;
          if (this.sendWindow > 0x7fffffff) throw new H2ConnectionError("the peer overflowed the connection's send window");
          for (const s of this.streams.values()) if (!s.localEnded) this.sendPending(s);
        } else {
          const stream = this.streams.get(id);
          if (!stream) return;
          stream.sendWindow += increment;
          if (stream.sendWindow > 0x7fffffff) return stream.close(FLOW_CONTROL_ERROR);
          if (!stream.localEnded) this.sendPending(stream);
        }
        return;
      }
      default:
        // PRIORITY and frame types this side does not know: ignored, as RFC 9113 says.
        return;
    }
  }

  private onData(flags: number, id: number, payload: Uint8Array): void {
    const body = this.unpad(flags, payload);
    const stream = this.streams.get(id);
    // A stream already reset: its bytes still count against the connection's window.
    if (!stream) return this.credit(undefined, payload.byteLength);
    // Padding counts against the windows too; it is credited back at once.
    const padding = payload.byteLength - body.byteLength;
    if (padding > 0) this.credit(stream, padding);
    if (body.byteLength > 0) stream.pushData(body);
    if (flags & END_STREAM) this.endStream(stream);
  }

  private endBlock(): void {
    const { stream: id, endStream, parts } = this.block!;
    this.block = undefined;
    const whole = parts.length === 1 ? parts[0]! : concat(parts);
    let fields: [string, string][];
    try {
      // Decoded even for a stream we dropped: the table must stay in step with the peer's.
      fields = this.decoder.decode(whole);
    } catch (e) {
      throw new H2ConnectionError(`the peer sent headers this client cannot decode: ${(e as HpackError).message}`);
    }
    const stream = this.streams.get(id);
    if (!stream) return;
    const record: HeaderFields = {};
    for (const [name, value] of fields) record[name] = name in record ? `${record[name]}, ${value}` : value;
    if (!stream.headers) stream.headers = record;
    else stream.trailers = record;
    if (endStream) this.endStream(stream);
    else stream.changed();
  }

  private endStream(stream: H2Stream): void {
    stream.ended = true;
    // Closed once both sides have ended; until then WINDOW_UPDATEs for our side still come.
    if (stream.localEnded) this.streams.delete(stream.id);
    stream.changed();
  }

  private onSettings(flags: number, id: number, payload: Uint8Array): void {
    if (id !== 0) throw new H2ConnectionError("SETTINGS on a stream");
    if (flags & ACK) return;
    if (payload.byteLength % 6 !== 0) throw new H2ConnectionError("SETTINGS of the wrong size");
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    for (let at = 0; at < payload.byteLength; at += 6) {
      const key = v.getUint16(at);
      const value = v.getUint32(at + 2);
      if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (value > 0x7fffffff) throw new H2ConnectionError("SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1");
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (key === SETTINGS_MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) throw new H2ConnectionError(`SETTINGS_MAX_FRAME_SIZE of ${value}`);
        this.peerMaxFrame = value;
      }
    }
    this.frame(SETTINGS, ACK, 0, new Uint8Array(0));
    for (const s of this.streams.values()) if (!s.localEnded) this.sendPending(s);
  }

  /** @internal: `stream` has more to send. */
  send(stream: H2Stream): void {
    if (this.failure) return this.dropOutbox(stream, this.failure);
    this.sendPending(stream);
  }

  /**
   * Sends as much of the stream's outbox as the windows allow, then END_STREAM once
   * the outbox is empty and the end is queued. Each entry's `sent` is called after the
   * flush that copies it out.
   */
  private sendPending(stream: H2Stream): void {
    const sent: (() => void)[] = [];
    while (stream.outbox.length && !this.failure) {
      const head = stream.outbox[0]!;
      const n = Math.min(head.bytes.byteLength, this.sendWindow, stream.sendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      const last = n === head.bytes.byteLength;
      if (last) {
        stream.outbox.shift();
        if (head.sent) sent.push(head.sent);
      }
      const part = head.bytes.subarray(0, n);
      if (!last) head.bytes = head.bytes.subarray(n);
      this.sendWindow -= n;
      stream.sendWindow -= n;
      const ends = stream.endQueued && stream.outbox.length === 0;
      this.frame(DATA, ends ? END_STREAM : 0, stream.id, part);
      if (ends) stream.localEnded = true;
    }
    if (stream.outbox.length === 0 && stream.endQueued && !stream.localEnded && !this.failure) {
      this.frame(DATA, END_STREAM, stream.id, new Uint8Array(0));
      stream.localEnded = true;
    }
    if (stream.localEnded && stream.ended) this.streams.delete(stream.id);
    // Copied out by the flush (it always copies), so the writers may reuse their buffers.
    this.afterFlush.push(...sent);
    this.flushSoon();
  }

  private dropOutbox(stream: H2Stream, error: Error): void {
    stream.outbox = [];
    stream.endQueued = true;
    stream.localEnded = true;
    stream.failSent?.(error);
    stream.failSent = undefined;
  }

  private unpad(flags: number, payload: Uint8Array): Uint8Array {
    if (!(flags & PADDED)) return payload;
    const pad = payload[0];
    if (pad === undefined || pad >= payload.byteLength) throw new H2ConnectionError("padding longer than its frame");
    return payload.subarray(1, payload.byteLength - pad);
  }

  private windowUpdate(id: number, increment: number): void {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, increment);
    this.frame(WINDOW_UPDATE, 0, id, payload);
  }

  private goAway(code: number): void {
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setUint32(4, code);
    this.frame(GOAWAY, 0, 0, payload);
    this.goneAway = true;
    this.flush();
  }

  private fail(error: Error, closeTransport: boolean): void {
    if (this.failure) return;
    this.failure = error;
    this.onFailed(error);
    this.out = [];
    this.afterFlush = [];
    for (const stream of this.streams.values()) {
      stream.error = error;
      this.dropOutbox(stream, error);
      stream.changed();
    }
    this.streams.clear();
    if (closeTransport) this.transport.close();
  }

  private frame(type: number, flags: number, id: number, payload: Uint8Array): void {
    const head = new Uint8Array(9);
    head[0] = payload.byteLength >>> 16;
    head[1] = (payload.byteLength >>> 8) & 0xff;
    head[2] = payload.byteLength & 0xff;
    head[3] = type;
    head[4] = flags;
    new DataView(head.buffer).setUint32(5, id);
    this.queue(head);
    if (payload.byteLength > 0) this.queue(payload);
  }

  private queue(bytes: Uint8Array): void {
    if (this.failure) return;
    this.out.push(bytes);
    this.flushSoon();
  }

  /** Frames queued in one turn go out in one write. */
  private flushSoon(): void {
    if (this.flushing || this.out.length === 0) return;
    this.flushing = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    if (this.out.length === 0 || this.failure) return;
    const parts = this.out;
    this.out = [];
    // Always a copy: a DATA frame's payload is the writer's buffer, which it may reuse
    // once told it was sent, while the transport may hold on to what it was given.
    this.transport.write(concat(parts));
    for (const sent of this.afterFlush.splice(0)) sent();
  }
}

function frameLength(data: Uint8Array, at: number): number {
  return (data[at]! << 16) | (data[at + 1]! << 8) | data[at + 2]!;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
