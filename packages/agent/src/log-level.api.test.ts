// BGPConfiguration.logSeverity sets the agent's log level live, over real HTTP against a Kubernetes
// API server (the embedded one, or KUBECONFIG's cluster); a level given by flag or env wins.
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BGPCONFIGURATION, type BGPConfiguration, installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogLevelController, liveLogger, severityFor } from './log-level.js';

const CRD_DIR = fileURLToPath(new URL('../../../deploy/crds', import.meta.url));
const RUN = `ll${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NODE = `${RUN}-n1`;
let cluster: TestCluster;
let client: KubeClient;

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function capture() {
  const lines: { level: number; msg: string; peer?: string }[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, stream };
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
});

afterAll(async () => {
  await client
    ?.resource(BGPCONFIGURATION)
    .delete(`node.${NODE}`)
    .catch(() => {});
  await cluster?.close();
});

describe('BGPConfiguration.logSeverity', () => {
  it('prefers node.<name> over default, and unset over nothing', () => {
    const cfg = (name: string, logSeverity?: string) =>
      ({ metadata: { name }, spec: logSeverity ? { logSeverity } : {} }) as BGPConfiguration;
    expect(severityFor([cfg('default', 'warn'), cfg('node.n1', 'debug')], 'n1')).toBe('debug');
    expect(severityFor([cfg('default', 'warn'), cfg('node.n1')], 'n1')).toBe('warn');
    expect(severityFor([cfg('default'), cfg('node.n2', 'debug')], 'n1')).toBeUndefined();
  });

  it("sets the level of the agent's loggers, children included, while it runs; removing it restores the configured level", async () => {
    const { lines, stream } = capture();
    const { log, setLevel } = liveLogger({ level: 'info' }, stream);
    const child = log.child({ component: 'bgp' }).child({ peer: 'x' });
    const ctl = new LogLevelController({
      client,
      nodeName: NODE,
      configured: 'info',
      fixed: false,
      setLevel,
      logger: log,
    });
    ctl.start();
    try {
      child.debug('before');
      await client
        .resource(BGPCONFIGURATION)
        .create({ metadata: { name: `node.${NODE}` }, spec: { logSeverity: 'debug' } });
      await waitFor('debug', () => ctl.level() === 'debug');
      child.debug('while debug');
      await client.resource(BGPCONFIGURATION).patch(`node.${NODE}`, { spec: { logSeverity: 'error' } });
      await waitFor('error', () => ctl.level() === 'error');
      child.warn('hidden at error');
      child.error('shown at error');
      await client.resource(BGPCONFIGURATION).delete(`node.${NODE}`);
      await waitFor('back to info', () => ctl.level() === 'info');
      child.info('info again');
      child.debug('no debug at info');
      const mine = lines.filter((l) => l.peer === 'x').map((l) => l.msg);
      expect(mine).toEqual(['while debug', 'shown at error', 'info again']);
      expect(lines.filter((l) => l.msg === 'log level changed')).toHaveLength(3);
    } finally {
      await ctl.stop();
    }
  }, 30_000);

  it('leaves a level given by --log-level or PODNET_LOG_LEVEL alone', async () => {
    const { lines, stream } = capture();
    const { log, setLevel } = liveLogger({ level: 'warn' }, stream);
    let applied = 0;
    const ctl = new LogLevelController({
      client,
      nodeName: NODE,
      configured: 'warn',
      fixed: true,
      setLevel: (l) => {
        applied++;
        setLevel(l);
      },
      logger: log,
    });
    ctl.start();
    try {
      await client
        .resource(BGPCONFIGURATION)
        .create({ metadata: { name: `node.${NODE}` }, spec: { logSeverity: 'trace' } });
      // Wait until the controller has seen the object (its informer delivers it), then check.
      await waitFor('the object to be seen', () => ctl.seen() > 0);
      expect(ctl.level()).toBe('warn');
      expect(applied).toBe(0);
      log.child({ c: 1 }).info('not shown');
      expect(lines).toEqual([]);
    } finally {
      await ctl.stop();
      await client.resource(BGPCONFIGURATION).delete(`node.${NODE}`);
    }
  }, 30_000);
});
