import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCompose } from './compose.js';
import { selectModel } from './models.js';
import { labObjects } from './objects.js';
import { planLab } from './plan.js';

const project = parseCompose(readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8'));
const tors = planLab(project, { prefix: 'pnl-' }).services.filter((s) => s.role === 'tor');
const objectsFor = (model: string) =>
  labObjects(project.settings, selectModel(project.settings.models, model), tors);

describe('labObjects', () => {
  it('writes the pools, the default BGPConfiguration and a ToR peer per family (flat model)', () => {
    const o = objectsFor('flat');
    expect(o.ipPools.map((p) => [p.metadata.name, p.spec.cidr, p.spec.natOutgoing, p.spec.isolated])).toEqual(
      project.settings.ipPools.map((p) => [p.name, p.cidr, false, undefined]),
    );
    expect(o.bgpConfiguration.metadata.name).toBe('default');
    expect(o.bgpConfiguration.spec.asNumber).toBe(project.settings.bgp.nodeAsNumber);
    expect(o.bgpPeers.map((p) => [p.metadata.name, p.spec.peerIP, p.spec.exportFilters])).toEqual([
      ['tor-v4', '10.88.0.254', undefined],
      ['tor-v6', 'fd00:88::fe', undefined],
    ]);
  });

  it("carries the model's pool fields and ToR export filters (island, isolated)", () => {
    const island = objectsFor('island');
    expect(island.ipPools.every((p) => p.spec.natOutgoing === true)).toBe(true);
    expect(island.bgpPeers.find((p) => p.metadata.name === 'tor-v4')?.spec.exportFilters).toEqual([
      expect.objectContaining({ cidr: '10.244.0.0/16', action: 'Reject' }),
    ]);
    expect(island.bgpPeers.find((p) => p.metadata.name === 'tor-v6')?.spec.exportFilters).toEqual([
      expect.objectContaining({ cidr: 'fd00:244::/48', action: 'Reject' }),
    ]);
    const isolated = objectsFor('isolated');
    expect(isolated.ipPools.every((p) => p.spec.isolated === true)).toBe(true);
    expect(isolated.bgpPeers.every((p) => p.spec.exportFilters === undefined)).toBe(true);
  });
});
