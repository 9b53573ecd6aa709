// Server-side printing: a CRD's additionalPrinterColumns reach kubectl as a meta.k8s.io/v1 Table
// (kubectl get nodestatuses shows Ready, Established, … as on kube-apiserver). The pure conversion,
// then the real kubectl (scripts/fetch-tools.sh; skipped, saying so, when it is missing) against
// the embedded server over HTTPS.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from './index.js';
import { humanAge, readPath, toTable, wantsTable } from './table.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const KUBECTL = join(repoRoot, 'node_modules/.cache/kubectl-trixie/kubectl');
const CRD = join(repoRoot, 'deploy/crds/podnet.io_nodestatuses.yaml');

describe('Table conversion', () => {
  it('reads jsonPaths, ages dates, leaves a missing cell null, and adds Age when a CRD has no columns', () => {
    const o = {
      metadata: { name: 'n1', creationTimestamp: '2026-01-01T00:00:00Z' },
      status: { ready: true, list: [{ x: 3 }], reasons: ['a', 'b'], at: '2026-01-01T00:09:30Z' },
    };
    expect(readPath(o, '.status.list[0].x')).toBe(3);
    expect(readPath(o, '.status.nope.x')).toBeUndefined();
    const now = Date.parse('2026-01-01T00:10:00Z');
    const t = toTable(
      [
        { name: 'Ready', type: 'boolean', jsonPath: '.status.ready' },
        { name: 'Updated', type: 'date', jsonPath: '.status.at' },
        { name: 'Reasons', type: 'string', jsonPath: '.status.reasons', priority: 1 },
        { name: 'Gone', type: 'integer', jsonPath: '.status.gone' },
      ],
      [o as never],
      '7',
      now,
    );
    expect(t.columnDefinitions.map((c) => `${c.name}:${c.priority}`)).toEqual([
      'Name:0',
      'Ready:0',
      'Updated:0',
      'Reasons:1',
      'Gone:0',
    ]);
    expect(t.rows[0]!.cells).toEqual(['n1', true, '30s', '["a","b"]', null]);
    expect(toTable([], [o as never], '7', now).rows[0]!.cells).toEqual(['n1', '10m']);
    expect([
      humanAge(95_000),
      humanAge(200_000),
      humanAge(3 * 3600_000 + 60_000),
      humanAge(50 * 3600_000),
    ]).toEqual(['95s', '3m20s', '3h1m', '2d2h']);
    expect(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io,application/json')).toBe(true);
    expect(wantsTable('application/json')).toBe(false);
  });
});

describe.skipIf(!existsSync(KUBECTL))(
  `kubectl get on a custom resource${existsSync(KUBECTL) ? '' : ` (skipped: ${KUBECTL} is missing: run scripts/fetch-tools.sh)`}`,
  () => {
    let server: ApiServer;
    let dir: string;
    // Async: the server answers in this process.
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
        const child = spawn(KUBECTL, ['--request-timeout', '20s', ...args], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: join(dir, 'kubeconfig') },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => done({ code, stdout, stderr }));
      });
    const kubectl = async (...args: string[]) => {
      const r = await run(args);
      expect(r.code, `kubectl ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'podnet-apiserver-table-'));
      server = await startApiServer({ port: 0, kubeconfigPath: join(dir, 'kubeconfig') });
    });
    afterAll(async () => {
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("prints NodeStatus's printer columns (wide adds Reasons), and plain JSON stays JSON", async () => {
      await kubectl('apply', '-f', CRD);
      const obj = join(dir, 'ns.json');
      writeFileSync(
        obj,
        JSON.stringify({
          apiVersion: 'podnet.io/v1alpha1',
          kind: 'NodeStatus',
          metadata: { name: 'node-a' },
        }),
      );
      // The CRD is served once registered; a create racing kubectl's discovery cache is retried.
      let created = await run(['create', '-f', obj]);
      for (let i = 0; i < 20 && created.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        created = await run(['create', '-f', obj]);
      }
      expect(created.code, created.stderr).toBe(0);
      const status = {
        agentVersion: '0.1.0',
        address: '10.88.0.11',
        ready: false,
        reasons: ['sessions not established: 10.88.0.13 Active'],
        sessions: [],
        establishedSessions: 2,
        totalSessions: 3,
        routes: {
          ipv4: { desired: 4, installed: 4, failed: 0, pending: 0 },
          ipv6: { desired: 1, installed: 1, failed: 0, pending: 0 },
        },
        ipam: { blocks: [], addressesInUse: 5 },
        heartbeatSeconds: 60,
        lastUpdate: new Date(Date.now() - 30_000).toISOString(),
      };
      await kubectl(
        'patch',
        'nodestatus',
        'node-a',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      );
      const lines = (await kubectl('get', 'nodestatuses')).trim().split('\n');
      expect(lines[0]!.split(/\s+/)).toEqual([
        'NAME',
        'READY',
        'ESTABLISHED',
        'SESSIONS',
        'ROUTES4',
        'ROUTES6',
        'ADDRESSES',
        'VERSION',
        'UPDATED',
      ]);
      expect(lines[1]).toMatch(/^node-a\s+false\s+2\s+3\s+4\s+1\s+5\s+0\.1\.0\s+\d+s$/);
      expect(await kubectl('get', 'nodestatuses', '-o', 'wide')).toMatch(
        /REASONS[\s\S]*\["sessions not established: 10\.88\.0\.13 Active"\]/,
      );
      expect(
        JSON.parse(await kubectl('get', 'nodestatus', 'node-a', '-o', 'json')).status.establishedSessions,
      ).toBe(2);
    });
  },
);
