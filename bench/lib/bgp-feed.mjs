// Builds the bgp-ingest feed: 1,000,000 IPv4 prefixes in packed UPDATEs over ~10,000 distinct
// attribute sets (varied AS paths, origins, MEDs, communities), then End-of-RIB. Deterministic.
import { wire } from '../../packages/bgp/dist/index.js';

function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns { stream: Buffer (all UPDATEs + End-of-RIB), updates, sets } for a feeder at `nextHop`. */
export function buildFeed({ prefixes = 1_000_000, sets = 10_000, feederAs = 65100, nextHop }) {
  const rnd = prng(42);
  const groups = Array.from({ length: sets }, () => []);
  for (let i = 0; i < prefixes; i++) {
    const addr = 0x01000000 + i * 256; // 1.0.0.0 upwards, one /24 (or /21) per index
    const len = i % 8 === 0 ? 21 : 24;
    const a = addr >>> 0;
    groups[Math.floor(rnd() * sets)].push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.0/${len}`);
  }
  const frames = [];
  for (let j = 0; j < sets; j++) {
    if (groups[j].length === 0) continue;
    const pathLen = 1 + Math.floor(rnd() * 7);
    const asns = [feederAs];
    for (let k = 0; k < pathLen; k++) asns.push(1 + Math.floor(rnd() * 64000));
    const attrs = [
      { type: 'origin', value: j % 3 === 0 ? 2 : 0 },
      { type: 'as-path', segments: [{ type: 'sequence', asns }] },
      { type: 'next-hop', addr: nextHop },
    ];
    if (j % 4 === 0) attrs.push({ type: 'med', value: Math.floor(rnd() * 1000) });
    if (j % 2 === 0)
      attrs.push({
        type: 'communities',
        values: [((feederAs << 16) | (j & 0xffff)) >>> 0, ((asns[1] << 16) | 100) >>> 0],
      });
    frames.push(...wire.packAnnounce(1, groups[j], attrs, { as4: true }));
  }
  frames.push(wire.encodeMessage(wire.endOfRib(1)));
  return { stream: Buffer.concat(frames), updates: frames.length - 1, sets };
}
