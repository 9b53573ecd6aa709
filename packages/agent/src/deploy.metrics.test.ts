// /metrics for Prometheus on the node's address (--metrics-listen, default 0.0.0.0:9091), with
// /status, /livez and /readyz only on the loopback status listener. Real HTTP on ephemeral ports.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { createMetrics } from './metrics.js';
import { type MetricsListener, startMetricsListener } from './metrics-listener.js';
import { type AgentStatus, type StatusServer, startStatusServer } from './status.js';

const log = pino({ level: 'silent' });
const open: (MetricsListener | StatusServer)[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

describe('--metrics-listen', () => {
  it('defaults to 0.0.0.0:9091 and is set by flag, environment or file, or turned off with none', () => {
    const base = { env: { NODENAME: 'n1' }, argv: [] as string[] };
    expect(loadConfig(base).config.metricsListen).toBe('0.0.0.0:9091');
    expect(
      loadConfig({ ...base, env: { ...base.env, PODNET_METRICS_LISTEN: '10.0.0.5:9100' } }).config
        .metricsListen,
    ).toBe('10.0.0.5:9100');
    expect(loadConfig({ ...base, argv: ['--metrics-listen', 'none'] }).config.metricsListen).toBe('none');
    expect(() => loadConfig({ ...base, argv: ['--metrics-listen', 'nine'] })).toThrow(
      /--metrics-listen.*"nine"/,
    );
  });

  it('serves /metrics and nothing else; /status, /livez and /readyz stay on the status listener', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const src = async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    });
    const m = await startMetricsListener('127.0.0.1:0', src, log);
    open.push(m);
    const status = { version: 1, ready: true, readiness: { reasons: [] } } as unknown as AgentStatus;
    const s = await startStatusServer(
      '127.0.0.1:0',
      { live: () => true, status: () => status, metrics: src },
      log,
    );
    open.push(s);

    const scrape = await fetch(`${m.url}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    expect(await scrape.text()).toMatch(/^# HELP podnet_/m);
    for (const path of ['/status', '/livez', '/readyz', '/', '/metrics/../status']) {
      const r = await fetch(`${m.url}${path}`);
      expect(r.status, `${path} on the metrics listener`).toBe(404);
      expect(await r.text()).not.toContain('"version"');
    }
    expect((await fetch(`${m.url}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${s.url}/status`)).status).toBe(200);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  });

  it('names the option and the value when it cannot listen', async () => {
    await expect(
      startMetricsListener('127.0.0.1:99999', async () => ({ contentType: '', body: '' }), log),
    ).rejects.toThrow(/--metrics-listen "127.0.0.1:99999"/);
  });

  it('both listeners name their own option when the address is bad or taken', async () => {
    const src = async () => ({ contentType: '', body: '' });
    const statusSrc = { live: () => true, status: () => ({}) as AgentStatus, metrics: src };
    await expect(startStatusServer('127.0.0.1:99999', statusSrc, log)).rejects.toMatchObject({
      code: 'AGENT_ERR_STATUS_LISTEN',
      message: expect.stringContaining('--status-listen "127.0.0.1:99999"'),
    });
    const m = await startMetricsListener('127.0.0.1:0', src, log);
    open.push(m);
    const taken = new URL(m.url).host;
    await expect(startStatusServer(taken, statusSrc, log)).rejects.toMatchObject({
      code: 'AGENT_ERR_STATUS_LISTEN',
      message: expect.stringContaining(`--status-listen ${taken}: listen EADDRINUSE`),
    });
    await expect(startMetricsListener(taken, src, log)).rejects.toMatchObject({
      code: 'AGENT_ERR_METRICS_LISTEN',
      message: expect.stringContaining(`--metrics-listen ${taken}: listen EADDRINUSE`),
    });
  });
});
