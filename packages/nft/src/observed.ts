// What the kernel holds in podnet's table, in the model's terms: enough to detect drift (chains
// and their specs, the rule count per chain, sets and maps with their elements), read from
// `nft -j list table inet <name>`. Elements are in canonical text (see elements.ts).

import { canonicalElement, verdictText } from './elements.js';
import { NftError } from './errors.js';
import type { SetType, Verdict } from './model.js';

export interface ObservedChain {
  base?: { type: string; hook: string; priority: number; policy: string };
  rules: number;
  /**
   * Each rule's content, normalised: its expressions and comment as JSON, counter values dropped
   * (handles are not part of it). Compared with what the kernel held right after a full apply.
   */
  ruleTexts: string[];
  comment?: string;
}

export interface ObservedSet {
  kind: 'set' | 'map';
  type: string;
  interval: boolean;
  /** Canonical elements; for a map `key : verdict`. */
  elements: string[];
  comment?: string;
}

export interface Observed {
  chains: Map<string, ObservedChain>;
  sets: Map<string, ObservedSet>;
}

type Json = Record<string, unknown>;

function elemValue(e: unknown): unknown {
  // `{"elem": {"val": ..., "counter": ...}}` wraps an element that carries statements.
  if (e && typeof e === 'object' && !Array.isArray(e) && 'elem' in (e as Json)) {
    return ((e as Json).elem as Json).val;
  }
  return e;
}

function keyText(type: string, v: unknown): string {
  v = elemValue(v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return canonicalElement(type as SetType, v);
  if (v && typeof v === 'object') {
    const o = v as Json;
    if (o.prefix) {
      const p = o.prefix as { addr: string; len: number };
      return canonicalElement(type as SetType, `${p.addr}/${p.len}`);
    }
    if (Array.isArray(o.concat)) {
      const types = type.split(' . ');
      return o.concat.map((x, i) => keyText(types[i] ?? type, x)).join(' . ');
    }
    if (Array.isArray(o.range)) {
      return `${keyText(type, o.range[0])}-${keyText(type, o.range[1])}`;
    }
  }
  throw new NftError('NFT_ERR_READ', `unrecognised set element ${JSON.stringify(v)}`);
}

function verdictOf(v: unknown): Verdict {
  const o = (v ?? {}) as Json;
  if ('accept' in o) return { kind: 'accept' };
  if ('drop' in o) return { kind: 'drop' };
  if ('return' in o) return { kind: 'return' };
  if ('jump' in o) return { kind: 'jump', chain: String((o.jump as Json).target) };
  if ('goto' in o) return { kind: 'goto', chain: String((o.goto as Json).target) };
  throw new NftError('NFT_ERR_READ', `unrecognised verdict ${JSON.stringify(v)}`);
}

/** A rule's expressions and comment as JSON with counter values dropped (they change with traffic). */
function ruleText(r: Json): string {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const o: Json = {};
      for (const [k, x] of Object.entries(v as Json)) o[k] = k === 'counter' ? {} : strip(x);
      return o;
    }
    return v;
  };
  return JSON.stringify({ expr: strip(r.expr), comment: r.comment ?? null });
}

/** Parses `nft -j list table inet <table>` output into the observed shape (pure). */
export function parseListing(json: string, table: string): Observed {
  let doc: { nftables?: Json[] };
  try {
    doc = JSON.parse(json) as { nftables?: Json[] };
  } catch (err) {
    throw new NftError('NFT_ERR_READ', `nft -j output is not JSON: ${(err as Error).message}`, '', {
      cause: err,
    });
  }
  if (!Array.isArray(doc.nftables))
    throw new NftError('NFT_ERR_READ', 'nft -j output has no "nftables" array');
  const obs: Observed = { chains: new Map(), sets: new Map() };
  const mine = (o: Json) => o.family === 'inet' && o.table === table;
  for (const item of doc.nftables) {
    if (item.chain) {
      const c = item.chain as Json;
      if (!mine(c)) continue;
      const chain: ObservedChain = { rules: 0, ruleTexts: [] };
      if (c.hook !== undefined) {
        chain.base = {
          type: String(c.type),
          hook: String(c.hook),
          priority: Number(c.prio),
          policy: String(c.policy ?? 'accept'),
        };
      }
      if (typeof c.comment === 'string') chain.comment = c.comment;
      obs.chains.set(String(c.name), chain);
    }
  }
  for (const item of doc.nftables) {
    const s = (item.set ?? item.map) as Json | undefined;
    if (s && mine(s)) {
      // A concatenation's type is listed as an array of its fields' types.
      const type = Array.isArray(s.type) ? s.type.join(' . ') : String(s.type);
      const isMap = item.map !== undefined;
      const elems = Array.isArray(s.elem) ? s.elem : [];
      const set: ObservedSet = {
        kind: isMap ? 'map' : 'set',
        type,
        interval: Array.isArray(s.flags) && s.flags.includes('interval'),
        elements: elems.map((e: unknown) =>
          isMap
            ? `${keyText(type, (e as unknown[])[0])} : ${verdictText(verdictOf((e as unknown[])[1]))}`
            : keyText(type, e),
        ),
      };
      if (typeof s.comment === 'string') set.comment = s.comment;
      obs.sets.set(String(s.name), set);
    }
    if (item.rule) {
      const r = item.rule as Json;
      if (!mine(r)) continue;
      const chain = obs.chains.get(String(r.chain));
      if (chain) {
        chain.rules += 1;
        chain.ruleTexts.push(ruleText(r));
      }
    }
  }
  return obs;
}
