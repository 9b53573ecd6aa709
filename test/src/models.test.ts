// The three network models (compose.yaml x-podnet.models), one lab each: the whole reachability
// table over TCP and UDP, IPv4 and IPv6, with the source address every receiver reported (the lab's
// echo), printed and asserted against what each model promises, written out here row kind by row
// kind (not taken from the lab's own expectations).
import { execFileSync } from 'node:child_process';
import { type MeasuredRow, renderTable } from '@podnet/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downScenarioLab, type Lab, routes, scenarioConfig, upScenarioLab } from './harness.js';

/** Who the receiver must see as the source: the sender, the sender pod's node, or nobody. */
type Want = 'sender' | 'node of the sender' | 'no connection';
type ModelPromise = Record<MeasuredRow['traffic'], Want>;

const always = {
  'pod→pod same node': 'sender',
  'pod→pod cross node': 'sender',
  'node→pod': 'sender',
  'external→node': 'sender',
} as const;

const promises: Record<'flat' | 'island' | 'isolated', ModelPromise> = {
  flat: { ...always, 'pod→external': 'sender', 'external→pod': 'sender' },
  island: { ...always, 'pod→external': 'node of the sender', 'external→pod': 'no connection' },
  isolated: { ...always, 'pod→external': 'no connection', 'external→pod': 'no connection' },
};

/** Rows per kind with 3 nodes × 2 pods: the table is whole. */
const rowCounts = {
  'pod→pod same node': 6,
  'pod→pod cross node': 24,
  'node→pod': 18,
  'pod→external': 6,
  'external→pod': 6,
  'external→node': 3,
};

/** Every cell that differs from the promise, named (empty when the table is as promised). */
function mismatches(lab: Lab, rows: MeasuredRow[], promise: ModelPromise): string[] {
  const out: string[] = [];
  for (const r of rows) {
    const want = promise[r.traffic];
    for (const f of [4, 6] as const) {
      const senderNode = lab.nodes.find((n) => n.name === r.from.node);
      const addr = (e: { ipv4?: string; ipv6?: string } | undefined) => (f === 4 ? e?.ipv4 : e?.ipv6);
      const nodeAddr = senderNode?.links[0]?.[f === 4 ? 'ipv4' : 'ipv6']?.split('/')[0];
      const expected =
        want === 'sender' ? addr(r.from) : want === 'node of the sender' ? nodeAddr : undefined;
      if (want !== 'no connection' && !expected) {
        out.push(`${r.traffic} ${r.from.name} → ${r.to.name}: no IPv${f} address to expect`);
        continue;
      }
      for (const proto of ['tcp', 'udp'] as const) {
        const seen = r.seen[f]?.[proto];
        const cell = `${r.traffic} ${r.from.name} → ${r.to.name} ${proto}${f}`;
        if (seen !== expected)
          out.push(
            `${cell}: saw ${seen ?? `nothing (${r.seen[f]?.[`${proto}Error`] ?? 'not probed'})`}, want ${expected ?? 'no connection'}`,
          );
      }
    }
  }
  return out;
}

function modelSuite(model: 'flat' | 'island' | 'isolated', tag: string, extra: (get: () => Lab) => void) {
  describe(`network model ${model}`, () => {
    const config = scenarioConfig(tag, { model });
    let lab: Lab;
    let rows: MeasuredRow[] = [];

    beforeAll(async () => {
      lab = await upScenarioLab(config);
      // Bounded: probes until the table is what the model promises or the reachability timeout.
      rows = await lab.waitForTable();
      console.log(renderTable(lab.model, rows));
    });

    afterAll(() => downScenarioLab(config));

    it('runs the model named on the command line', () => {
      expect(lab.model.name).toBe(model);
    });

    it('probes the whole table: every kind of traffic, both families, both protocols', () => {
      const counts: Record<string, number> = {};
      for (const r of rows) counts[r.traffic] = (counts[r.traffic] ?? 0) + 1;
      expect(counts).toEqual(rowCounts);
      for (const r of rows) {
        for (const f of [4, 6] as const) {
          expect(r.expected[f], `${r.traffic} ${r.from.name} → ${r.to.name} has IPv${f}`).toBeDefined();
          const s = r.seen[f];
          expect(s?.tcp ?? s?.tcpError, `tcp${f} probed`).toBeDefined();
          expect(s?.udp ?? s?.udpError, `udp${f} probed`).toBeDefined();
        }
      }
    });

    it('every receiver sees the source the model promises (or no connection)', () => {
      expect(mismatches(lab, rows, promises[model])).toEqual([]);
    });

    extra(() => lab);
  });
}

modelSuite('flat', 'mflat', (lab) => {
  it('the ToR routes the pod blocks', () => {
    const tor = lab().tors[0];
    expect(tor).toBeDefined();
    const pods = routes(tor!.ns, 4).filter((r) => r.dst.startsWith('10.244.'));
    expect(pods.length).toBeGreaterThan(0);
  });
});

modelSuite('island', 'misland', (lab) => {
  it('the ToR carries no pod route (the nodes export none to it) but keeps its sessions', async () => {
    const tor = lab().tors[0];
    expect(tor).toBeDefined();
    for (const f of [4, 6] as const) {
      const pool = f === 4 ? '10.244.' : 'fd00:244:';
      expect(routes(tor!.ns, f).filter((r) => r.dst.startsWith(pool))).toEqual([]);
    }
    const peers = await lab().torPeerTables();
    expect(peers.length).toBe(6);
    expect(peers.filter((p) => p.state !== 'up').map((p) => `${p.peer} ${p.state}`)).toEqual([]);
  });
});

modelSuite('isolated', 'misol', (lab) => {
  it('the nodes dropped what crossed the isolation boundary (counters of inet podnet forward)', () => {
    // No connection is shown by what dropped it, not by a timeout alone: the ToR still routes the
    // pods here, so the packets reached the nodes and podnet's forward rules dropped them.
    let dropped = 0;
    for (const node of lab().nodes) {
      const out = execFileSync('ip', [
        'netns',
        'exec',
        node.ns,
        'nft',
        '-j',
        'list',
        'chain',
        'inet',
        'podnet',
        'forward',
      ]).toString();
      const doc = JSON.parse(out) as { nftables: { rule?: { expr: Record<string, unknown>[] } }[] };
      for (const item of doc.nftables) {
        const expr = item.rule?.expr ?? [];
        if (!expr.some((e) => 'drop' in e)) continue;
        const counter = expr.find((e) => 'counter' in e)?.counter as { packets?: number } | undefined;
        dropped += counter?.packets ?? 0;
      }
    }
    expect(dropped).toBeGreaterThan(0);
  });
});
