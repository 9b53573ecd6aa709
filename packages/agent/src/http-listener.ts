// Starting and stopping the agent's HTTP listeners (status.ts and metrics-listener.ts): the
// `host:port` flag, listen errors as AgentErrors naming the flag, the URL and a close that ends
// open keep-alive connections.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { AgentError, type AgentErrorCode } from './errors.js';

export interface HttpListener {
  url: string;
  close(): Promise<void>;
}

/** Which flag a listener comes from and the error code its failures carry. */
export interface ListenFlag {
  flag: '--status-listen' | '--metrics-listen';
  code: Extract<AgentErrorCode, 'AGENT_ERR_STATUS_LISTEN' | 'AGENT_ERR_METRICS_LISTEN'>;
}

/** `host:port` or `[v6]:port` → host and port, or an error with `f.code` naming the value. */
export function parseListen(f: ListenFlag, listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new AgentError(f.code, `${f.flag} ${JSON.stringify(listen)}: expected host:port`);
  return { host: m[1] ?? m[2]!, port };
}

/** Binds `server` to `listen`; logs `${what} listening` with the URL. */
export async function listenHttp(
  server: Server,
  f: ListenFlag,
  listen: string,
  what: string,
  log: Logger,
): Promise<HttpListener> {
  const { host, port } = parseListen(f, listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new AgentError(f.code, `${f.flag} ${listen}: ${err.message}`, { cause: err })),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  log.info({ url }, `${what} listening`);
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
