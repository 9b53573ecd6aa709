// A patch (planPatch's steps) as one nf_tables netlink batch: chains, sets and maps added and
// deleted, chains flushed, elements, and rules encoded as the kernel's expressions. Pure: no I/O.
// Layouts are from the kernel's include/uapi/linux/netfilter/nf_tables.h; which expressions a
// match becomes, its registers and its implicit dependencies (`ip saddr` in an inet table checks
// `meta nfproto` first, `tcp dport` checks `meta l4proto`, each once per rule) follow what `nft`
// sends for the same text, so the kernel holds the same rules either way (nfnl-patch.netns.test.ts
// compares the kernel's own encodings and listings).
//
// What this does not encode returns null and the caller renders the patch for `nft -f`: a base
// chain added (a hook), an interval or concatenated set added, elements of an interval set, and
// masquerade.
import { Writer } from '@podnet/rtnetlink';
import type { Action, AddrField, KeyField, Match, Rule, Verdict } from './model.js';
import {
  batchMarker,
  ELEMENTS_PER_MESSAGE,
  type ElementChange,
  encodeElementMessage,
  IFNAMSIZ,
  NFNL_MSG_BATCH_BEGIN,
  NFNL_MSG_BATCH_END,
  NFPROTO_INET,
  NFT_MSG,
  NFTA_DATA,
  NFTA_EXPR,
  NFTA_RULE,
  NFTA_VERDICT,
  NLA_F_NESTED,
  nfgen,
  nftMsgType,
  u32be,
  VERDICT_CODE,
} from './nfnl.js';
import type { PatchPlan } from './patch.js';
import type { ValidTable } from './render.js';

/** enum nft_chain_attributes, nft_set_attributes (only those used). */
const NFTA_CHAIN = { TABLE: 1, NAME: 3, USERDATA: 12 } as const;
const NFTA_SET = {
  TABLE: 1,
  NAME: 2,
  FLAGS: 3,
  KEY_TYPE: 4,
  KEY_LEN: 5,
  DATA_TYPE: 6,
  DATA_LEN: 7,
  ID: 10,
  USERDATA: 13,
} as const;
/** enum nft_set_flags */
const NFT_SET_MAP = 0x8;
/** NFT_DATA_VERDICT: a verdict map's data type. */
const NFT_DATA_VERDICT = 0xffffff00;
/** nftables' datatype numbers (datatype.h), which the set's key type carries. */
const DATATYPE = { ipv4_addr: 7, ipv6_addr: 8, inet_service: 13, ifname: 41 } as const;
const KEY_LEN = { ipv4_addr: 4, ipv6_addr: 16, inet_service: 2, ifname: IFNAMSIZ } as const;
/** libnftnl's user data types (udata.h): set key byte order, data byte order, data interval, comment. */
const UDATA_SET = { KEYBYTEORDER: 0, DATABYTEORDER: 1, DATA_INTERVAL: 6, COMMENT: 7 } as const;
/** nftables' byte orders: BYTEORDER_HOST_ENDIAN 1, BYTEORDER_BIG_ENDIAN 2. */
const BYTEORDER = { ipv4_addr: 2, ipv6_addr: 2, inet_service: 2, ifname: 1 } as const;
/** Rule and chain comments: user data type 0 (NFTNL_UDATA_RULE_COMMENT / _CHAIN_COMMENT). */
const UDATA_COMMENT = 0;

/** Registers: the verdict, the first 16-byte one (nft numbers 32-bit parts from 8). */
const REG_VERDICT = 0;
const REG_1 = 1;
const REG32_00 = 8;
/** enum nft_payload_bases, nft_cmp_ops, nft_meta_keys (only those used). */
const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
const CMP = { eq: 0, neq: 1, gte: 5, lte: 3 } as const;
const META = { IIFNAME: 6, OIFNAME: 7, NFPROTO: 15, L4PROTO: 16 } as const;
/** Protocol numbers and the families of `meta nfproto` (NFPROTO_IPV4 2, NFPROTO_IPV6 10). */
const L4 = { tcp: 6, udp: 17, sctp: 132 } as const;
const NFPROTO = { ip: 2, ip6: 10 } as const;
/** ct state bits (nf_conntrack_common.h: invalid 1, then 1 << (ctinfo + 1), untracked 1 << 6). */
const CT_STATE = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 } as const;
const NFT_CT_STATE = 0;
const LOOKUP_F_INV = 1;

/** One message of an encoded patch: what it asked, to name it in an error. */
export interface PatchPart {
  seq: number;
  what: string;
}

export interface EncodedPatch {
  bytes: Buffer;
  first: number;
  last: number;
  parts: PatchPart[];
}

/** Builds the rule's expressions: each match with the dependencies nft adds, once per rule. */
class RuleEncoder {
  /** The network family and transport protocol already checked in this rule. */
  private nfproto: number | undefined;
  private l4proto: number | undefined;

  constructor(private readonly w: Writer) {}

  private expr(name: string, body: () => void): void {
    const w = this.w;
    const e = w.beginNest(1 | NLA_F_NESTED); // NFTA_LIST_ELEM
    w.attrStr(NFTA_EXPR.NAME, name);
    const d = w.beginNest(NFTA_EXPR.DATA | NLA_F_NESTED);
    body();
    w.endNest(d);
    w.endNest(e);
  }

  private u32(type: number, v: number): void {
    this.w.attr(type, u32be(v));
  }

  private data(type: number, value: Uint8Array): void {
    const n = this.w.beginNest(type | NLA_F_NESTED);
    this.w.attr(NFTA_DATA.VALUE, value);
    this.w.endNest(n);
  }

  private meta(key: number, dreg: number): void {
    this.expr('meta', () => {
      this.u32(2, key); // NFTA_META_KEY
      this.u32(1, dreg); // NFTA_META_DREG
    });
  }

  private payload(base: number, offset: number, len: number, dreg: number): void {
    this.expr('payload', () => {
      this.u32(1, dreg); // NFTA_PAYLOAD_DREG
      this.u32(2, base);
      this.u32(3, offset);
      this.u32(4, len);
    });
  }

  private cmp(op: number, value: Uint8Array): void {
    this.expr('cmp', () => {
      this.u32(1, REG_1); // NFTA_CMP_SREG
      this.u32(2, op);
      this.data(3, value); // NFTA_CMP_DATA
    });
  }

  private lookup(set: string, sreg: number, opts: { negate?: boolean; verdict?: boolean } = {}): void {
    this.expr('lookup', () => {
      this.u32(2, sreg); // NFTA_LOOKUP_SREG
      this.w.attrStr(1, set); // NFTA_LOOKUP_SET
      if (opts.verdict) this.u32(3, REG_VERDICT); // NFTA_LOOKUP_DREG
      if (opts.negate) this.u32(5, LOOKUP_F_INV); // NFTA_LOOKUP_FLAGS
    });
  }

  private needFamily(family: number): void {
    if (this.nfproto === family) return;
    this.meta(META.NFPROTO, REG_1);
    this.cmp(CMP.eq, Uint8Array.of(family));
    this.nfproto = family;
  }

  private needL4(proto: number): void {
    if (this.l4proto === proto) return;
    this.meta(META.L4PROTO, REG_1);
    this.cmp(CMP.eq, Uint8Array.of(proto));
    this.l4proto = proto;
  }

  /** Loads a field into `reg` (with its dependency); its length in bytes. */
  private load(field: KeyField, reg: number): number {
    if (field === 'iifname' || field === 'oifname') {
      this.meta(field === 'iifname' ? META.IIFNAME : META.OIFNAME, reg);
      return IFNAMSIZ;
    }
    if (field === 'th dport') {
      this.payload(PAYLOAD_BASE.transport, 2, 2, reg);
      return 2;
    }
    const [family, side] = field.split(' ') as ['ip' | 'ip6', 'saddr' | 'daddr'];
    this.needFamily(NFPROTO[family]);
    const v4 = family === 'ip';
    const offset = v4 ? (side === 'saddr' ? 12 : 16) : side === 'saddr' ? 8 : 24;
    this.payload(PAYLOAD_BASE.network, offset, v4 ? 4 : 16, reg);
    return v4 ? 4 : 16;
  }

  /** Loads the fields one after another in 32-bit units, as a concatenated key; the first register. */
  private loadConcat(fields: KeyField[]): number {
    let word = 0;
    for (const f of fields) word += Math.ceil(this.load(f, register(word)) / 4);
    return REG_1;
  }

  match(m: Match): void {
    switch (m.kind) {
      case 'addr':
        this.load(m.field as AddrField, REG_1);
        this.lookup(m.set, REG_1, { negate: m.negate });
        return;
      case 'ifset':
        this.load(m.field, REG_1);
        this.lookup(m.set, REG_1, { negate: m.negate });
        return;
      case 'concat':
        this.lookup(m.set, this.loadConcat(m.fields), { negate: m.negate });
        return;
      case 'ifname': {
        this.load(m.field, REG_1);
        const prefix = m.name.endsWith('*');
        const name = Buffer.from(prefix ? m.name.slice(0, -1) : m.name, 'latin1');
        const value = prefix ? name : Buffer.concat([name, Buffer.alloc(IFNAMSIZ - name.length)]);
        this.cmp(m.negate ? CMP.neq : CMP.eq, value);
        return;
      }
      case 'l4': {
        const proto = L4[m.proto];
        if (m.dport === undefined) {
          this.meta(META.L4PROTO, REG_1);
          this.cmp(CMP.eq, Uint8Array.of(proto));
          this.l4proto = proto;
          return;
        }
        this.needL4(proto);
        this.payload(PAYLOAD_BASE.transport, 2, 2, REG_1);
        const port = (p: number) => Uint8Array.of(p >> 8, p & 0xff);
        if (typeof m.dport === 'number') this.cmp(CMP.eq, port(m.dport));
        else if ('range' in m.dport) {
          this.cmp(CMP.gte, port(m.dport.range[0]));
          this.cmp(CMP.lte, port(m.dport.range[1]));
        } else this.lookup(m.dport.set, REG_1);
        return;
      }
      case 'ct': {
        let mask = 0;
        for (const s of m.states) mask |= CT_STATE[s];
        const le = (v: number) => {
          const b = Buffer.alloc(4);
          b.writeUInt32LE(v);
          return b;
        };
        this.expr('ct', () => {
          this.u32(1, REG_1); // NFTA_CT_DREG
          this.u32(2, NFT_CT_STATE); // NFTA_CT_KEY
        });
        this.expr('bitwise', () => {
          this.u32(1, REG_1); // NFTA_BITWISE_SREG
          this.u32(2, REG_1); // NFTA_BITWISE_DREG
          this.u32(3, 4); // NFTA_BITWISE_LEN
          this.data(4, le(mask)); // NFTA_BITWISE_MASK
          this.data(5, le(0)); // NFTA_BITWISE_XOR
        });
        this.cmp(CMP.neq, le(0));
        return;
      }
    }
  }

  counter(): void {
    this.expr('counter', () => {});
  }

  /** A verdict or a verdict map lookup (masquerade is not encoded here: the caller checked). */
  action(a: Exclude<Action, { kind: 'masquerade' }>): void {
    if (a.kind === 'vmap') {
      this.load(a.field, REG_1);
      this.lookup(a.map, REG_1, { verdict: true });
      return;
    }
    this.expr('immediate', () => {
      this.u32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
      const d = this.w.beginNest(2 | NLA_F_NESTED); // NFTA_IMMEDIATE_DATA
      verdictData(this.w, a);
      this.w.endNest(d);
    });
  }
}

/** nft's register for the 32-bit word `word` of the register file (a 16-byte one when aligned). */
function register(word: number): number {
  return word % 4 === 0 ? REG_1 + word / 4 : REG32_00 + word;
}

function verdictData(w: Writer, v: Verdict): void {
  const n = w.beginNest(NFTA_DATA.VERDICT | NLA_F_NESTED);
  w.attr(NFTA_VERDICT.CODE, u32be(VERDICT_CODE[v.kind]));
  if (v.kind === 'jump' || v.kind === 'goto') w.attrStr(NFTA_VERDICT.CHAIN, v.chain);
  w.endNest(n);
}

/** libnftnl's user data: type, length, value (a string NUL-terminated, a number host-order u32). */
function udata(items: [type: number, value: string | number][]): Buffer {
  return Buffer.concat(
    items.map(([type, v]) => {
      const value = typeof v === 'string' ? Buffer.from(`${v}\0`, 'utf8') : Buffer.alloc(4);
      if (typeof v === 'number') value.writeUInt32LE(v);
      return Buffer.concat([Uint8Array.of(type, value.length), value]);
    }),
  );
}

/** Whether the netlink encoder takes this plan (see the file's header). */
export function encodable(plan: PatchPlan): boolean {
  const setTypeOk = (s: ValidTable['sets'][number]) => !s.interval && !s.type.includes(' . ');
  return (
    plan.addChains.every((c) => !c.base) &&
    plan.addSets.every(setTypeOk) &&
    [...plan.delElements, ...plan.addElements].every((e) => !e.set.interval) &&
    plan.rules.every((r) => r.rule.action?.kind !== 'masquerade')
  );
}

/**
 * Encodes the plan as one batch, every message asking for an ACK; null when it is not encodable()
 * (the caller uses `nft -f`).
 */
export function encodePatchBatch(plan: PatchPlan, seq: number): EncodedPatch | null {
  if (!encodable(plan)) return null;
  const { table } = plan;
  const fam = `inet ${table}`;
  const w = new Writer(8192);
  const first = seq;
  const parts: PatchPart[] = [];
  const REQ_ACK = 0x1 | 0x4; // NLM_F_REQUEST | NLM_F_ACK
  const CREATE = 0x400;
  const APPEND = 0x800;
  const msg = (type: number, flags: number, what: string, body: () => void) => {
    const m = w.beginMsg(nftMsgType(type), REQ_ACK | flags, seq);
    nfgen(w, NFPROTO_INET, 0);
    w.attrStr(1, table); // NFTA_*_TABLE
    body();
    w.endMsg(m);
    parts.push({ seq: seq++, what });
  };
  const elements = (op: 'add' | 'delete', list: PatchPlan['addElements']) => {
    for (const { set, elements: all } of list) {
      const c: ElementChange = {
        set: set.name,
        kind: set.kind,
        type: set.type,
        add: op === 'add' ? all : [],
        delete: op === 'delete' ? all : [],
      };
      for (let i = 0; i < all.length; i += ELEMENTS_PER_MESSAGE) {
        const chunk = all.slice(i, i + ELEMENTS_PER_MESSAGE);
        encodeElementMessage(w, op, table, c, chunk, seq, true);
        const shown =
          chunk.length <= 4 ? chunk.join(', ') : `${chunk.slice(0, 4).join(', ')}, … (${chunk.length})`;
        parts.push({ seq: seq++, what: `${op} element ${fam} ${set.name} { ${shown} }` });
      }
    }
  };

  batchMarker(w, NFNL_MSG_BATCH_BEGIN, seq++);
  for (const c of plan.addChains) {
    msg(NFT_MSG.NEWCHAIN, CREATE, `add chain ${fam} ${c.name}`, () => {
      w.attrStr(NFTA_CHAIN.NAME, c.name);
      if (c.comment !== undefined) w.attr(NFTA_CHAIN.USERDATA, udata([[UDATA_COMMENT, c.comment]]));
    });
  }
  let setId = 1;
  for (const s of plan.addSets) {
    const type = s.type as keyof typeof DATATYPE;
    msg(NFT_MSG.NEWSET, CREATE, `add ${s.kind} ${fam} ${s.name}`, () => {
      w.attrStr(NFTA_SET.NAME, s.name);
      w.attr(NFTA_SET.FLAGS, u32be(s.kind === 'map' ? NFT_SET_MAP : 0));
      w.attr(NFTA_SET.KEY_TYPE, u32be(DATATYPE[type]));
      w.attr(NFTA_SET.KEY_LEN, u32be(KEY_LEN[type]));
      if (s.kind === 'map') {
        w.attr(NFTA_SET.DATA_TYPE, u32be(NFT_DATA_VERDICT));
        w.attr(NFTA_SET.DATA_LEN, u32be(0));
      }
      w.attr(NFTA_SET.ID, u32be(setId++));
      const ud: [number, string | number][] = [[UDATA_SET.KEYBYTEORDER, BYTEORDER[type]]];
      if (s.kind === 'map') ud.push([UDATA_SET.DATABYTEORDER, 0], [UDATA_SET.DATA_INTERVAL, 0]);
      if (s.comment !== undefined) ud.push([UDATA_SET.COMMENT, s.comment]);
      w.attr(NFTA_SET.USERDATA, udata(ud));
    });
  }
  elements('delete', plan.delElements);
  for (const name of plan.flush) {
    msg(NFT_MSG.DELRULE, 0, `flush chain ${fam} ${name}`, () => w.attrStr(NFTA_RULE.CHAIN, name));
  }
  for (const s of plan.deleteSets) {
    msg(NFT_MSG.DELSET, 0, `delete ${s.kind} ${fam} ${s.name}`, () => w.attrStr(NFTA_SET.NAME, s.name));
  }
  for (const name of plan.deleteChains) {
    msg(NFT_MSG.DELCHAIN, 0, `delete chain ${fam} ${name}`, () => w.attrStr(NFTA_CHAIN.NAME, name));
  }
  elements('add', plan.addElements);
  for (const { chain, rule } of plan.rules) {
    msg(NFT_MSG.NEWRULE, CREATE | APPEND, `add rule ${fam} ${chain} (${describeRule(rule)})`, () => {
      w.attrStr(NFTA_RULE.CHAIN, chain);
      const list = w.beginNest(NFTA_RULE.EXPRESSIONS | NLA_F_NESTED);
      const enc = new RuleEncoder(w);
      for (const m of rule.match ?? []) enc.match(m);
      if (rule.counter) enc.counter();
      if (rule.action) enc.action(rule.action as Exclude<Action, { kind: 'masquerade' }>);
      w.endNest(list);
      if (rule.comment !== undefined) w.attr(NFTA_RULE.USERDATA, udata([[UDATA_COMMENT, rule.comment]]));
    });
  }
  batchMarker(w, NFNL_MSG_BATCH_END, seq);
  return { bytes: Buffer.from(w.view()), first, last: seq, parts };
}

/** A rule's comment, else its match kinds (for an error naming the refused rule). */
function describeRule(r: Rule): string {
  if (r.comment !== undefined) return `comment ${JSON.stringify(r.comment)}`;
  return (r.match ?? []).map((m) => m.kind).join(' ') || (r.action?.kind ?? 'counter');
}
