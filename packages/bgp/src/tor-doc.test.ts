// docs/tor.md, run: every BIRD 2, FRR and GoBGP example is taken from the markdown as written and
// run in a network namespace as the ToR (10.0.0.1, AS 65000), against a bgp-ts speaker in the
// node's namespace (10.0.0.11, AS 64512) configured from the BGPPeer (and Secret) next to it.
// Each must reach Established, and routes must cross both ways: the node's pod block to the ToR,
// the ToR's 192.0.2.0/24 to the node.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '@podnet/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { birdEstablished, startBird, startFrr, wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';
import type { PeerConfig } from './speaker.js';

const DOC = join(import.meta.dirname, '..', '..', '..', 'docs', 'tor.md');
const NODE = { address: '10.0.0.11', asn: 64512, block: '10.244.0.0/26' };
const TOR_PREFIX = '192.0.2.0/24';

interface Section {
  title: string;
  blocks: { lang: string; text: string }[];
}

/** The `## ` sections of the markdown with their fenced blocks. */
function sections(md: string): Section[] {
  const out: Section[] = [];
  let cur: Section | undefined;
  let fence: { lang: string; lines: string[] } | undefined;
  for (const line of md.split('\n')) {
    if (fence) {
      if (line.startsWith('```')) {
        cur?.blocks.push({ lang: fence.lang, text: `${fence.lines.join('\n')}\n` });
        fence = undefined;
      } else fence.lines.push(line);
    } else if (line.startsWith('```')) fence = { lang: line.slice(3).trim(), lines: [] };
    else if (line.startsWith('## ')) {
      cur = { title: line.slice(3).trim(), blocks: [] };
      out.push(cur);
    }
  }
  return out;
}

/** The speaker's peer from the section's BGPPeer (and the Secret holding its password). */
function peerFrom(section: Section): PeerConfig {
  const docs = section.blocks
    .filter((b) => b.lang === 'yaml')
    .flatMap((b) => parseAllDocuments(b.text).map((d) => d.toJS()));
  const peers = docs.filter((d) => d?.kind === 'BGPPeer');
  expect(peers, `${section.title}: one BGPPeer`).toHaveLength(1);
  const spec = peers[0].spec;
  expect(spec.node, `${section.title}: the BGPPeer selects node-a`).toBe('node-a');
  const peer: PeerConfig = {
    address: spec.peerIP,
    asn: spec.asNumber,
    holdTime: spec.holdTime,
    keepalive: spec.keepaliveTime,
    connectRetry: 1,
  };
  if (spec.password) {
    const ref = spec.password.secretKeyRef;
    const secret = docs.find((d) => d?.kind === 'Secret' && d.metadata.name === ref.name);
    expect(secret?.stringData?.[ref.key], `${section.title}: Secret ${ref.name} key ${ref.key}`).toBeTypeOf(
      'string',
    );
    peer.md5Password = secret.stringData[ref.key];
  }
  return peer;
}

const all = sections(readFileSync(DOC, 'utf8'));
const section = (title: string) => {
  const s = all.find((x) => x.title === title);
  if (!s) throw new Error(`docs/tor.md has no section "## ${title}"`);
  return s;
};
const block = (s: Section, lang: string) => {
  const b = s.blocks.filter((x) => x.lang === lang);
  if (b.length !== 1)
    throw new Error(`docs/tor.md "${s.title}": expected one \`\`\`${lang} block, found ${b.length}`);
  return b[0]!.text;
};

let lab: SpeakerLab;
let dirs: string[] = [];
let speaker: SpeakerProc | undefined;
afterEach(async () => {
  await lab?.stop([speaker], dirs);
  speaker = undefined;
  dirs = [];
});

async function rack(name: string, peer: PeerConfig): Promise<{ tor: Netns; node: SpeakerProc }> {
  lab = new SpeakerLab();
  const { us, them } = await lab.pair(
    { us: `tornode${name}`, them: `tor${name}`, themIf: 'v-tor' },
    { us: [`${NODE.address}/24`], them: ['10.0.0.1/24'] },
  );
  speaker = new SpeakerProc(us, lab.procs, { asn: NODE.asn, routerId: NODE.address, listen: { port: 179 } });
  await speaker.addPeer(peer);
  await speaker.originate(NODE.block);
  return { tor: them, node: speaker };
}

/** The node learned the ToR's prefix, from the ToR. */
async function nodeLearned(node: SpeakerProc) {
  await wait(
    `${TOR_PREFIX} from the ToR in the node's RIB`,
    async () => (await node.lookup(TOR_PREFIX)) !== null,
  );
  expect((await node.peers()).map((p) => [p.address, p.state])).toEqual([['10.0.0.1', 'established']]);
}

describe('docs/tor.md examples against podnet', { timeout: 120_000 }, () => {
  it('has the three tested routers and a BGPPeer for each', () => {
    for (const t of ['BIRD 2', 'FRR', 'GoBGP']) expect(peerFrom(section(t)).address).toBe('10.0.0.1');
  });

  it('BIRD 2: Established (TCP MD5), the pod block in BIRD, 192.0.2.0/24 on the node', async () => {
    const s = section('BIRD 2');
    const peer = peerFrom(s);
    expect(peer.md5Password).toBe('change-me');
    const { tor, node } = await rack('b', peer);
    const bird = await startBird(tor, lab.procs, block(s, 'bird'));
    dirs.push(bird.dir);
    await node.start();
    await wait('BIRD node_a Established', () => birdEstablished(bird, 'node_a'));
    await wait(`${NODE.block} in BIRD from node_a`, async () =>
      (await bird.route(NODE.block)).includes('node_a'),
    );
    await nodeLearned(node);
  });

  it('FRR: Established through the listen range, the pod block in bgpd, 192.0.2.0/24 on the node', async () => {
    const s = section('FRR');
    const { tor, node } = await rack('f', peerFrom(s));
    const frr = await startFrr(tor, lab.procs, block(s, 'frr'));
    dirs.push(frr.dir);
    await node.start();
    await wait('FRR has the node (a dynamic neighbour of the listen range) Established', async () => {
      const n = await frr.json<Record<string, { bgpState?: string }>>(
        `show bgp neighbors ${NODE.address} json`,
      );
      return n[NODE.address]?.bgpState === 'Established';
    });
    await wait(`${NODE.block} in FRR`, async () => {
      const r = await frr.json<{ paths?: unknown[] }>(`show bgp ipv4 unicast ${NODE.block} json`);
      return (r.paths?.length ?? 0) > 0;
    });
    await nodeLearned(node);
  });

  it('GoBGP: Established, the pod block in gobgpd, 192.0.2.0/24 (added with the CLI) on the node', async () => {
    const s = section('GoBGP');
    const { tor, node } = await rack('g', peerFrom(s));
    const dir = mkdtempSync(join(tmpdir(), 'pnt-gobgp-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'gobgpd.toml'), block(s, 'toml'));
    const api = '127.0.0.1:50051';
    const gobgpd = lab.procs.add(
      tor.spawn('gobgpd', [
        '-f',
        join(dir, 'gobgpd.toml'),
        '-t',
        'toml',
        '--api-hosts',
        api,
        '--disable-stdlog',
      ]),
    );
    const gobgp = (...args: string[]) =>
      tor.exec('gobgp', ['--host', '127.0.0.1', '--port', '50051', ...args]);
    await wait('gobgpd answers', async () => {
      if (gobgpd.exitCode !== null) throw new Error(`gobgpd exited ${gobgpd.exitCode}`);
      return (await gobgp('global')).code === 0;
    });
    // The CLI lines of the section, as written, against this gobgpd.
    const cli = block(s, 'sh')
      .split('\n')
      .filter((l) => l.startsWith('gobgp '));
    expect(cli.length).toBeGreaterThan(0);
    for (const l of cli) {
      const r = await gobgp(...l.split(/\s+/).slice(1));
      expect(r.code, `${l}: ${r.stderr}`).toBe(0);
    }
    await node.start();
    await wait('gobgpd has the node established', async () =>
      /BGP state = established/i.test((await gobgp('neighbor', NODE.address)).stdout),
    );
    await wait(`${NODE.block} in gobgpd`, async () =>
      (await gobgp('global', 'rib')).stdout.includes(NODE.block),
    );
    await nodeLearned(node);
  });
});
