// The lab's echo: a TCP and UDP server that answers every connection and every datagram with the
// source address it saw, and a prober that asks many servers at once. The network models' tables
// are built from what the receivers report, so translation is observed, not assumed. The CLI
// (echo-cli.ts) runs either side inside any lab namespace (pod, node, external host).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, connect as tcpConnect, createServer as tcpServer } from 'node:net';

export const DEFAULT_ECHO_PORT = 7777;
/** Servers stop by themselves after this long unless told otherwise (seconds). */
export const DEFAULT_ECHO_LIFETIME_S = 600;

export type EchoProto = 'tcp' | 'udp';

export interface EchoTarget {
  proto: EchoProto;
  address: string;
  port: number;
}

export interface EchoResult extends EchoTarget {
  /** The source address the receiver reported, when it answered. */
  seen?: string;
  /** Why there is no answer: `timeout`, or the socket error's code (ECONNREFUSED, EHOSTUNREACH…). */
  error?: string;
}

/** A peer address as the receiver saw it, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) shown as IPv4. */
export function peerText(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1] ?? address;
}

/** The reply to one connection or datagram: the address and port seen, one line. */
export function echoReply(address: string, port: number): string {
  return `${peerText(address)} ${port}\n`;
}

/** The address a reply names (its first word); undefined when the reply is not one. */
export function parseReply(text: string): string | undefined {
  const first = text.trim().split(/\s+/)[0] ?? '';
  return isIP(first) ? first : undefined;
}

/** `tcp:10.0.0.1:7777`, `udp:[fd00::1]:7777` → a target; throws naming the text when malformed. */
export function parseTarget(text: string): EchoTarget {
  const m = /^(tcp|udp):(?:\[([0-9a-fA-F:.]+)\]|(\d+\.\d+\.\d+\.\d+)):(\d{1,5})$/.exec(text);
  const address = m?.[2] ?? m?.[3];
  const port = Number(m?.[4]);
  if (!m || !address || isIP(address) === 0 || !(port >= 1 && port <= 65535)) {
    throw new Error(`echo target ${JSON.stringify(text)}: expected tcp:ADDR:PORT or udp:[ADDR6]:PORT`);
  }
  return { proto: m[1] as EchoProto, address, port };
}

export function formatTarget(t: EchoTarget): string {
  return `${t.proto}:${t.address.includes(':') ? `[${t.address}]` : t.address}:${t.port}`;
}

export interface EchoServer {
  close(): Promise<void>;
}

/** Listens on `::` (IPv4 too, as mapped addresses) for TCP and UDP on one port. */
export async function startEchoServer(port: number): Promise<EchoServer> {
  const tcp = tcpServer((conn) => {
    conn.on('error', () => conn.destroy());
    conn.end(echoReply(conn.remoteAddress ?? '?', conn.remotePort ?? 0));
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host: '::', port, ipv6Only: false }, () => resolve());
  });
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, rinfo) => {
    udp.send(echoReply(rinfo.address, rinfo.port), rinfo.port, rinfo.address);
  });
  udp.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind({ address: '::', port }, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        udp.close();
        tcp.close(() => resolve());
      }),
  };
}

/**
 * Ends a probe as timed out only after the I/O already waiting has been read: a prober descheduled
 * past its deadline (a loaded machine) wakes with its timers due before the poll phase, and would
 * call an answered probe a timeout. Each setImmediate lets one more poll phase run first; three
 * cover a connect completing, its reply being read and its end being seen.
 */
function lateTimeout(fn: () => void, polls = 3): void {
  setImmediate(() => (polls > 1 ? lateTimeout(fn, polls - 1) : fn()));
}

function probeTcp(t: EchoTarget, timeoutMs: number): Promise<EchoResult> {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const sock = tcpConnect({ host: t.address, port: t.port });
    const finish = (r: Omit<EchoResult, keyof EchoTarget>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...t, ...r });
    };
    const timer = setTimeout(() => lateTimeout(() => finish({ error: 'timeout' })), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      data += d;
    });
    sock.on('end', () => {
      const seen = parseReply(data);
      finish(seen ? { seen } : { error: `bad reply ${JSON.stringify(data.slice(0, 80))}` });
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
  });
}

function probeUdp(t: EchoTarget, timeoutMs: number): Promise<EchoResult> {
  return new Promise((resolve) => {
    const sock: UdpSocket = createSocket(t.address.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    const finish = (r: Omit<EchoResult, keyof EchoTarget>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      sock.close();
      resolve({ ...t, ...r });
    };
    const timer = setTimeout(() => lateTimeout(() => finish({ error: 'timeout' })), timeoutMs);
    const send = () => sock.send('probe\n', t.port, t.address, () => {});
    // A datagram may be lost (e.g. while a neighbour resolves): ask again a few times in the window.
    const resend = setInterval(send, Math.max(50, Math.floor(timeoutMs / 4)));
    sock.on('message', (msg) => {
      const seen = parseReply(msg.toString('utf8'));
      if (seen) finish({ seen });
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
    send();
  });
}

/** Asks every target at once; each answers with the source it saw or fails within `timeoutMs`. */
export function probeAll(targets: readonly EchoTarget[], timeoutMs: number): Promise<EchoResult[]> {
  return Promise.all(
    targets.map((t) => (t.proto === 'tcp' ? probeTcp(t, timeoutMs) : probeUdp(t, timeoutMs))),
  );
}
