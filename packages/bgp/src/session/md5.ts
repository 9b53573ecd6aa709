// TCP MD5 signatures (RFC 2385) through @podnet/native, loaded only when a password is configured,
// so speakers without passwords never need the native addon.
import { createRequire } from 'node:module';
import { isIPv6, Socket } from 'node:net';
import type { Conn, ConnectOptions } from './session.js';

interface Native {
  createTcpSocket(opts: {
    family: 4 | 6;
    bindAddress?: string;
    bindPort?: number;
    md5?: { peer: string; key: string }[];
  }): number;
  setTcpMd5(fd: number, peer: string, key: string | null): void;
}

let native: Native | undefined;

function load(): Native {
  if (!native) {
    const require = createRequire(import.meta.url);
    native = require('@podnet/native') as Native;
  }
  return native;
}

/** Connects a socket whose segments carry the MD5 signature for `opts.host`. */
export function connectWithMd5(opts: ConnectOptions & { md5Password: string }): Conn {
  const fd = load().createTcpSocket({
    family: isIPv6(opts.host) ? 6 : 4,
    ...(opts.localAddress ? { bindAddress: opts.localAddress, bindPort: 0 } : {}),
    md5: [{ peer: opts.host, key: opts.md5Password }],
  });
  const s = new Socket({ fd, readable: true, writable: true });
  s.setNoDelay(true);
  s.connect(opts.port, opts.host);
  return s;
}

/** Sets (or with null, removes) the key for `peer` on a listening socket; accepted sockets inherit it. */
export function setListenerMd5(fd: number, peer: string, key: string | null): void {
  load().setTcpMd5(fd, peer, key);
}
