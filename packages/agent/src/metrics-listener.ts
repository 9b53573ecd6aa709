// The metrics endpoint Prometheus scrapes from the node's address (`--metrics-listen`, default
// 0.0.0.0:9091): /metrics and nothing else. /status (the node's peers, routes and pods), /livez and
// /readyz stay on the loopback status listener (status.ts), which also serves /metrics for podnetctl.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { AgentError } from './errors.js';

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/** `host:port` or `[v6]:port` → host and port, or an AGENT_ERR_METRICS_LISTEN naming the value. */
export function parseListen(flag: string, listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new AgentError('AGENT_ERR_METRICS_LISTEN', `${flag} ${JSON.stringify(listen)}: expected host:port`);
  return { host: m[1] ?? m[2]!, port };
}

export async function startMetricsListener(
  listen: string,
  metrics: () => Promise<{ contentType: string; body: string }>,
  log: Logger,
): Promise<MetricsListener> {
  const { host, port } = parseListen('--metrics-listen', listen);
  const server: Server = createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if ((req.url ?? '/').split('?')[0] !== '/metrics')
      return send(404, 'text/plain', 'not found: this listener serves /metrics only\n');
    metrics().then(
      (r) => send(200, r.contentType, r.body),
      (err) => {
        log.error({ err }, 'metrics failed');
        send(500, 'text/plain', `metrics failed: ${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new AgentError('AGENT_ERR_METRICS_LISTEN', `--metrics-listen ${listen}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  log.info({ url }, 'metrics endpoint listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
