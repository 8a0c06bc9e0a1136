/**
 * `j`'s HTTP/2 connection to its session (common/h2-connection.ts) and the socket
 * under it: a Unix socket (local mode, and the tunnel socket of a remote shell)
 * through Bun's native socket, which loads nothing; TCP and TLS (direct mode)
 * through node:net and node:tls as session-socket.ts opens them, loaded only then.
 */
import { type ByteTransport, H2ClientConnection } from "../common/h2-connection.ts";
import { WINDOW_BYTES } from "../common/http2-window.ts";
import { isTcpAddress, type SessionAddress } from "./session-address.ts";

/** Where the connection's bytes go once the socket is open. */
interface Sink {
  write(bytes: Uint8Array): void;
  close(): void;
}

/** Holds what the connection writes until its socket is open (the preface goes out at once). */
class PendingTransport implements ByteTransport {
  private queued: Uint8Array[] = [];
  private sink?: Sink;
  private closed = false;

  write(bytes: Uint8Array): void {
    if (this.sink) this.sink.write(bytes);
    else if (!this.closed) this.queued.push(bytes);
  }

  close(): void {
    this.closed = true;
    this.queued = [];
    this.sink?.close();
  }

  attach(sink: Sink): void {
    if (this.closed) return sink.close();
    this.sink = sink;
    for (const bytes of this.queued.splice(0)) sink.write(bytes);
  }
}

/**
 * Opens an HTTP/2 connection to the session at `addr`. A socket that cannot be opened
 * fails the connection's calls; a CA file that cannot be read throws here, as a UserError.
 */
export async function connectSession(addr: SessionAddress): Promise<H2ClientConnection> {
  const tcp = isTcpAddress(addr.host) ? (await import("./session-socket.ts")).sessionSocket(addr) : undefined;
  const transport = new PendingTransport();
  // Wide windows, as the Connect path: in distributed mode this is tunnelled through the router.
  const conn = new H2ClientConnection(transport, { windowBytes: WINDOW_BYTES });
  const opened = tcp ? openTcp(tcp.createConnection(), conn) : openUnix(addr.host, conn);
  opened.then((sink) => transport.attach(sink), (e: Error) => conn.transportClosed(e));
  return conn;
}

async function openUnix(path: string, conn: H2ClientConnection): Promise<Sink> {
  // Bun's socket writes what the kernel takes and says how much: the rest waits here for 'drain'.
  const backlog: Uint8Array[] = [];
  let ending = false;
  let socket: Bun.Socket<undefined>;
  const pump = () => {
    while (backlog.length) {
      const head = backlog[0]!;
      const n = socket.write(head);
      if (n < 0) return;
      if (n < head.byteLength) {
        backlog[0] = head.subarray(n);
        return;
      }
      backlog.shift();
    }
    if (ending) socket.end();
  };
  try {
    socket = await Bun.connect({
      unix: path,
      socket: {
        data: (_s, chunk) => conn.receive(chunk),
        drain: () => pump(),
        close: () => conn.transportClosed(),
        error: (_s, e) => conn.transportClosed(e),
      },
    });
  } catch (e) {
    // Worded as node:net words it, which is what error translation (client/errors.ts) and users know.
    const code = (e as { code?: string }).code;
    throw Object.assign(new Error(`connect ${code ?? "failed"} ${path}`, { cause: e }), { code, syscall: "connect", address: path });
  }
  return {
    write: (bytes) => {
      backlog.push(bytes);
      if (backlog.length === 1) pump();
    },
    close: () => {
      ending = true;
      if (backlog.length === 0) socket.end();
    },
  };
}

function openTcp(socket: import("node:net").Socket, conn: H2ClientConnection): Promise<Sink> {
  socket.on("data", (chunk: Uint8Array) => conn.receive(chunk));
  socket.on("error", (e) => conn.transportClosed(e));
  socket.on("close", () => conn.transportClosed());
  return Promise.resolve({
    write: (bytes: Uint8Array) => void socket.write(bytes),
    close: () => void socket.destroy(),
  });
}
