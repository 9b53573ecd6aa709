// Decoding whole datagrams into typed messages: a discriminated union keyed by `type`, with an
// `unknown` variant for message types this package does not model. Never throws.
import { type Address, decodeAddr } from './addr.js';
import { decodeNlError, type NlMsg, splitMessages } from './codec.js';
import { NLMSG, RTM } from './constants.js';
import type { NetlinkError } from './errors.js';
import { decodeLink, type Link } from './link.js';
import { decodeNeigh, type Neighbour } from './neigh.js';
import { decodeRoute, type RouteInfo } from './route.js';

interface Head {
  seq: number;
  /** nlmsg_flags of the message (NLM_F_MULTI, NLM_F_DUMP_INTR…). */
  flags: number;
}

export type RtnlMessage =
  | (Head & { type: 'link'; op: 'new' | 'del'; link: Link })
  | (Head & { type: 'addr'; op: 'new' | 'del'; addr: Address })
  | (Head & { type: 'route'; op: 'new' | 'del'; route: RouteInfo })
  | (Head & { type: 'neigh'; op: 'new' | 'del'; neigh: Neighbour })
  | (Head & { type: 'ack'; reqSeq: number })
  | (Head & {
      type: 'error';
      reqSeq: number;
      reqType: number;
      errno: number;
      extAck?: string;
      extAckOffset?: number;
    })
  | (Head & { type: 'done' })
  | (Head & { type: 'noop' })
  | (Head & { type: 'overrun' })
  | (Head & { type: 'unknown'; nlType: number; body: Buffer })
  | (Head & { type: 'malformed'; nlType: number; error: NetlinkError });

/** Decodes one netlink message. Unknown types give `unknown`; bad bodies give `malformed`. */
export function decodeMessage(m: NlMsg): RtnlMessage {
  const head = { seq: m.seq, flags: m.flags };
  const bad = (error: NetlinkError): RtnlMessage => ({ ...head, type: 'malformed', nlType: m.type, error });
  switch (m.type) {
    case NLMSG.NOOP:
      return { ...head, type: 'noop' };
    case NLMSG.DONE:
      return { ...head, type: 'done' };
    case NLMSG.OVERRUN:
      return { ...head, type: 'overrun' };
    case NLMSG.ERROR: {
      const e = decodeNlError(m);
      if (e instanceof Error) return bad(e);
      if (e.errno === 0) return { ...head, type: 'ack', reqSeq: e.reqSeq };
      const out: RtnlMessage = {
        ...head,
        type: 'error',
        reqSeq: e.reqSeq,
        reqType: e.reqType,
        errno: e.errno,
      };
      if (e.extAck !== undefined) out.extAck = e.extAck;
      if (e.extAckOffset !== undefined) out.extAckOffset = e.extAckOffset;
      return out;
    }
    case RTM.NEWLINK:
    case RTM.DELLINK: {
      const link = decodeLink(m.body);
      if (link instanceof Error) return bad(link);
      return { ...head, type: 'link', op: m.type === RTM.NEWLINK ? 'new' : 'del', link };
    }
    case RTM.NEWADDR:
    case RTM.DELADDR: {
      const addr = decodeAddr(m.body);
      if (addr instanceof Error) return bad(addr);
      return { ...head, type: 'addr', op: m.type === RTM.NEWADDR ? 'new' : 'del', addr };
    }
    case RTM.NEWROUTE:
    case RTM.DELROUTE: {
      const route = decodeRoute(m.body);
      if (route instanceof Error) return bad(route);
      return { ...head, type: 'route', op: m.type === RTM.NEWROUTE ? 'new' : 'del', route };
    }
    case RTM.NEWNEIGH:
    case RTM.DELNEIGH: {
      const neigh = decodeNeigh(m.body);
      if (neigh instanceof Error) return bad(neigh);
      return { ...head, type: 'neigh', op: m.type === RTM.NEWNEIGH ? 'new' : 'del', neigh };
    }
    default:
      return { ...head, type: 'unknown', nlType: m.type, body: m.body };
  }
}

/**
 * Decodes every message of a datagram. A broken frame (bad nlmsg_len) ends the list with a
 * `malformed` entry; the messages before it are kept.
 */
export function decodeDatagram(buf: Buffer): RtnlMessage[] {
  const { msgs, error } = splitMessages(buf);
  const out = msgs.map(decodeMessage);
  if (error) out.push({ seq: 0, flags: 0, type: 'malformed', nlType: 0, error });
  return out;
}
