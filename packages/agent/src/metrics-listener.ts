// The metrics endpoint Prometheus scrapes from the node's address (`--metrics-listen`, default
// 0.0.0.0:9091): /metrics and nothing else. /status (the node's peers, routes and pods), /livez and
// /readyz stay on the loopback status listener (status.ts), which also serves /metrics for podnetctl.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { type HttpListener, listenHttp } from './http-listener.js';

export type MetricsListener = HttpListener;

export async function startMetricsListener(
  listen: string,
  metrics: () => Promise<{ contentType: string; body: string }>,
  log: Logger,
): Promise<MetricsListener> {
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
  return listenHttp(
    server,
    { flag: '--metrics-listen', code: 'AGENT_ERR_METRICS_LISTEN' },
    listen,
    'metrics endpoint',
    log,
  );
}
