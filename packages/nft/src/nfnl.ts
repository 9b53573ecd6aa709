// The nf_tables netlink codec for the element fast path: one transaction (an nfnetlink batch) of
// set-element additions and deletions, the ruleset generation request, and the replies. Pure: no
// I/O. Layouts are from the kernel's include/uapi/linux/netfilter/nf_tables.h and nfnetlink.h.
//
// A batch is NFNL_MSG_BATCH_BEGIN, then NFT_MSG_DELSETELEM / NFT_MSG_NEWSETELEM messages, then
// NFNL_MSG_BATCH_END; the kernel applies it as one transaction or not at all. Integers inside
// nf_tables attributes are big-endian; the netlink and nfgenmsg headers are host order
// (little-endian on every platform podnet targets), except nfgenmsg.res_id (big-endian).
import { createHash } from 'node:crypto';
import { ipToBytes, parseIpResult } from '@podnet/net';
import {
  decodeNlError,
  NLM_F,
  NLMSG,
  type NlMsg,
  parseAttrs,
  splitMessages,
  Writer,
} from '@podnet/rtnetlink';
import { typeParts } from './elements.js';
import { NftError } from './errors.js';
import type { BaseType, SetType, Verdict } from './model.js';

/** nfnetlink.h */
export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 0x10; // NLMSG_MIN_TYPE
export const NFNL_MSG_BATCH_END = 0x11;
export const NFNETLINK_V0 = 0;
/** linux/netfilter.h: NFPROTO_INET (the `inet` family). */
export const NFPROTO_INET = 1;

/** nf_tables.h enum nf_tables_msg_types (only those used). */
export const NFT_MSG = {
  NEWCHAIN: 3,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  DELSET: 11,
  NEWSETELEM: 12,
  DELSETELEM: 14,
  NEWGEN: 15,
  GETGEN: 16,
} as const;
/** enum nft_rule_attributes (only those used). */
export const NFTA_RULE = { TABLE: 1, CHAIN: 2, EXPRESSIONS: 4, USERDATA: 7 } as const;
/** enum nft_expr_attributes */
export const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
/** enum nft_set_elem_list_attributes */
const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3 } as const;
/** enum nft_set_elem_attributes */
const NFTA_SET_ELEM = { KEY: 1, DATA: 2 } as const;
/** enum nft_data_attributes */
export const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
/** enum nft_verdict_attributes */
export const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
/** enum nft_gen_attributes */
const NFTA_GEN_ID = 1;
export const NLA_F_NESTED = 0x8000;
/** Verdict codes: NF_DROP 0, NF_ACCEPT 1 (netfilter.h); enum nft_verdicts. */
export const VERDICT_CODE = { drop: 0, accept: 1, jump: -3, goto: -4, return: -5 } as const;
/** IFNAMSIZ: an ifname key is 16 bytes, NUL-padded. */
export const IFNAMSIZ = 16;

export const nftMsgType = (m: number) => (NFNL_SUBSYS_NFTABLES << 8) | m;

/** Element changes of one set or map, in the canonical text of the model (elements.ts). */
export interface ElementChange {
  set: string;
  kind: 'set' | 'map';
  type: SetType;
  /** Elements to add; for a map `key : verdict`. */
  add: string[];
  /** Elements to delete; for a map `key : verdict` (only the key is sent). */
  delete: string[];
}

/** One element message of an encoded batch: what it asked, to name it in an error. */
export interface BatchPart {
  seq: number;
  op: 'add' | 'delete';
  set: string;
  elements: string[];
}

export interface EncodedBatch {
  bytes: Buffer;
  /** Sequence numbers: BATCH_BEGIN is `first`, BATCH_END is `last`. */
  first: number;
  last: number;
  parts: BatchPart[];
}

/** Elements per NEWSETELEM/DELSETELEM message: a nested attribute's length is 16 bits. */
export const ELEMENTS_PER_MESSAGE = 256;

export function keyBytes(type: SetType, text: string): Uint8Array {
  if (type.includes(' . ')) {
    // A concatenation: each field in its own 32-bit registers, zero-padded to a multiple of 4.
    const types = typeParts(type);
    const parts = text.split(' . ');
    if (parts.length !== types.length) {
      throw new NftError('NFT_ERR_INVALID', `element ${JSON.stringify(text)} is not a ${type} element`);
    }
    return Buffer.concat(
      types.map((t, i) => {
        const b = keyBytes(t, parts[i]!);
        const out = Buffer.alloc((b.length + 3) & ~3);
        out.set(b);
        return out;
      }),
    );
  }
  switch (type as BaseType) {
    case 'ipv4_addr':
    case 'ipv6_addr': {
      const r = parseIpResult(text);
      const want = type === 'ipv4_addr' ? 4 : 6;
      if (!r.ok || r.value.family !== want) {
        throw new NftError('NFT_ERR_INVALID', `element ${JSON.stringify(text)} is not an ${type} address`);
      }
      return ipToBytes(r.value);
    }
    case 'inet_service': {
      const n = Number(text);
      if (!/^[0-9]{1,5}$/.test(text) || n < 1 || n > 65535) {
        throw new NftError('NFT_ERR_INVALID', `element ${JSON.stringify(text)} is not a port 1..65535`);
      }
      return Uint8Array.of(n >> 8, n & 0xff);
    }
    case 'ifname': {
      const b = Buffer.alloc(IFNAMSIZ);
      const n = b.write(text, 'latin1');
      if (n !== text.length || n >= IFNAMSIZ || n === 0) {
        throw new NftError('NFT_ERR_INVALID', `element ${JSON.stringify(text)} is not an interface name`);
      }
      return b;
    }
  }
}

function parseVerdict(text: string): Verdict {
  const [kind, chain] = text.split(' ');
  if ((kind === 'jump' || kind === 'goto') && chain) return { kind, chain };
  if (kind === 'accept' || kind === 'drop' || kind === 'return') return { kind };
  throw new NftError('NFT_ERR_INVALID', `map element verdict ${JSON.stringify(text)} is not a verdict`);
}

export function u32be(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0); // verdict codes are negative
  return b;
}

export function nfgen(w: Writer, family: number, resId: number): void {
  w.u8(family);
  w.u8(NFNETLINK_V0);
  w.ensure(2);
  w.buf.writeUInt16BE(resId, w.off);
  w.off += 2;
}

export function encodeElementMessage(
  w: Writer,
  op: 'add' | 'delete',
  table: string,
  c: ElementChange,
  elements: string[],
  seq: number,
  ack: boolean,
): void {
  const type = nftMsgType(op === 'add' ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM);
  // `add element` (not `create`): NLM_F_CREATE without NLM_F_EXCL, as nft sends it.
  const flags = NLM_F.REQUEST | (op === 'add' ? NLM_F.CREATE : 0) | (ack ? NLM_F.ACK : 0);
  const m = w.beginMsg(type, flags, seq);
  nfgen(w, NFPROTO_INET, 0);
  w.attrStr(NFTA_SET_ELEM_LIST.TABLE, table);
  w.attrStr(NFTA_SET_ELEM_LIST.SET, c.set);
  const list = w.beginNest(NFTA_SET_ELEM_LIST.ELEMENTS | NLA_F_NESTED);
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i]!;
    const [key, verdict] = c.kind === 'map' ? e.split(' : ') : [e, undefined];
    // Each element is a nest whose type the kernel ignores; nft numbers them from 1, and so do we.
    const el = w.beginNest((i + 1) | NLA_F_NESTED);
    const k = w.beginNest(NFTA_SET_ELEM.KEY | NLA_F_NESTED);
    w.attr(NFTA_DATA.VALUE, keyBytes(c.type, key!));
    w.endNest(k);
    if (op === 'add' && c.kind === 'map') {
      const v = parseVerdict(verdict ?? '');
      const d = w.beginNest(NFTA_SET_ELEM.DATA | NLA_F_NESTED);
      const vd = w.beginNest(NFTA_DATA.VERDICT | NLA_F_NESTED);
      w.attr(NFTA_VERDICT.CODE, u32be(VERDICT_CODE[v.kind]));
      if (v.kind === 'jump' || v.kind === 'goto') w.attrStr(NFTA_VERDICT.CHAIN, v.chain);
      w.endNest(vd);
      w.endNest(d);
    }
    w.endNest(el);
  }
  w.endNest(list);
  w.endMsg(m);
}

export function batchMarker(w: Writer, type: number, seq: number): void {
  const m = w.beginMsg(type, NLM_F.REQUEST, seq);
  nfgen(w, 0, NFNL_SUBSYS_NFTABLES);
  w.endMsg(m);
}

/**
 * Encodes one nf_tables transaction: every deletion first (so a map key can change its verdict),
 * then every addition. Element messages carry NLM_F_ACK unless `ack` is false (fixtures compare
 * with what `nft` sends, which asks for no ACK). Throws NFT_ERR_INVALID for an element that is
 * not of the set's type.
 */
export function encodeElementBatch(
  table: string,
  changes: ElementChange[],
  seq: number,
  opts: { ack?: boolean } = {},
): EncodedBatch {
  const ack = opts.ack ?? true;
  const w = new Writer(4096);
  const first = seq;
  const parts: BatchPart[] = [];
  batchMarker(w, NFNL_MSG_BATCH_BEGIN, seq++);
  for (const op of ['delete', 'add'] as const) {
    for (const c of changes) {
      const all = op === 'add' ? c.add : c.delete;
      for (let i = 0; i < all.length; i += ELEMENTS_PER_MESSAGE) {
        const elements = all.slice(i, i + ELEMENTS_PER_MESSAGE);
        encodeElementMessage(w, op, table, c, elements, seq, ack);
        parts.push({ seq: seq++, op, set: c.set, elements });
      }
    }
  }
  batchMarker(w, NFNL_MSG_BATCH_END, seq);
  return { bytes: Buffer.from(w.view()), first, last: seq, parts };
}

/** NFT_MSG_GETGEN: asks for the ruleset generation of the namespace (answered by NFT_MSG_NEWGEN). */
export function encodeGetGen(seq: number): Buffer {
  const w = new Writer(32);
  const m = w.beginMsg(nftMsgType(NFT_MSG.GETGEN), NLM_F.REQUEST, seq);
  nfgen(w, 0, 0);
  w.endMsg(m);
  return Buffer.from(w.view());
}

/** NFT_MSG_GETRULE dump of every rule of `table` (inet), answered by NEWRULE messages and DONE. */
export function encodeGetRules(table: string, seq: number, chain?: string): Buffer {
  const w = new Writer(64);
  const m = w.beginMsg(nftMsgType(NFT_MSG.GETRULE), NLM_F.REQUEST | NLM_F.DUMP, seq);
  nfgen(w, NFPROTO_INET, 0);
  w.attrStr(NFTA_RULE.TABLE, table);
  // The kernel dumps only this chain's rules (ENOENT when the chain does not exist).
  if (chain !== undefined) w.attrStr(NFTA_RULE.CHAIN, chain);
  w.endMsg(m);
  return Buffer.from(w.view());
}

/** Walks a run of netlink attributes: (type without flag bits, value view). */
function* attrs(buf: Buffer, start = 0): Generator<[number, Buffer]> {
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) return;
    yield [buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len)];
    off += (len + 3) & ~3;
  }
}

/**
 * A rule's content as a digest of the kernel's own encoding: each expression's name and data
 * (a counter's packet and byte values left out: they change with traffic) and the user data (the
 * comment). Handles and positions are not part of it, so an unchanged rule digests the same in
 * every dump and a rule replaced in place does not.
 */
function ruleDigest(body: Buffer): { chain: string; digest: string } {
  const h = createHash('sha1');
  let chain = '';
  for (const [type, v] of attrs(body, 4)) {
    if (type === NFTA_RULE.CHAIN) chain = v.toString('latin1').replace(/\0.*$/s, '');
    else if (type === NFTA_RULE.USERDATA) h.update('u').update(v);
    else if (type === NFTA_RULE.EXPRESSIONS) {
      for (const [, expr] of attrs(v)) {
        let name = '';
        let data: Buffer | undefined;
        for (const [t, x] of attrs(expr)) {
          if (t === NFTA_EXPR.NAME) name = x.toString('latin1').replace(/\0.*$/s, '');
          else if (t === NFTA_EXPR.DATA) data = x;
        }
        h.update(`e${name}\0`);
        if (data && name !== 'counter') h.update(data);
      }
    }
  }
  return { chain, digest: h.digest('hex') };
}

/** A reply the fast path acts on (a discriminated union; anything else is `other`). */
export type NfnlReply =
  | { type: 'ack'; seq: number }
  | { type: 'rule'; seq: number; chain: string; digest: string }
  | { type: 'done'; seq: number; errno: number }
  | { type: 'error'; seq: number; errno: number; extAck?: string }
  | { type: 'gen'; seq: number; id: number }
  | { type: 'other'; seq: number; nlType: number }
  | { type: 'malformed'; reason: string };

function decodeOne(m: NlMsg): NfnlReply {
  if (m.type === NLMSG.ERROR) {
    const e = decodeNlError(m);
    if (e instanceof Error) return { type: 'malformed', reason: e.message };
    if (e.errno === 0) return { type: 'ack', seq: e.reqSeq };
    return { type: 'error', seq: e.reqSeq, errno: e.errno, ...(e.extAck ? { extAck: e.extAck } : {}) };
  }
  if (m.type === nftMsgType(NFT_MSG.NEWGEN)) {
    const attrs = parseAttrs(m.body, 4);
    if (attrs instanceof Error) return { type: 'malformed', reason: attrs.message };
    const id = attrs[NFTA_GEN_ID];
    if (!id || id.length < 4) return { type: 'malformed', reason: 'NEWGEN without NFTA_GEN_ID' };
    return { type: 'gen', seq: m.seq, id: id.readUInt32BE(0) };
  }
  if (m.type === nftMsgType(NFT_MSG.NEWRULE)) return { type: 'rule', seq: m.seq, ...ruleDigest(m.body) };
  if (m.type === NLMSG.DONE) {
    const code = m.body.length >= 4 ? m.body.readInt32LE(0) : 0;
    return { type: 'done', seq: m.seq, errno: -code };
  }
  return { type: 'other', seq: m.seq, nlType: m.type };
}

/** Decodes a datagram of replies (never throws). */
export function decodeReplies(datagram: Buffer): NfnlReply[] {
  const { msgs, error } = splitMessages(datagram);
  const out = msgs.map(decodeOne);
  if (error) out.push({ type: 'malformed', reason: error.message });
  return out;
}
