// What the raw-peer tests share: the one speaker a test runs (stopped after it), and the
// capabilities and path attributes their peers announce.
import { afterEach } from 'vitest';
import type { Speaker } from '../speaker.js';
import type { PathAttr } from '../wire/attributes.js';
import type { Capability } from '../wire/messages.js';

/**
 * Registers an afterEach that stops the speaker last handed to the returned function (each test
 * runs one); the function returns its argument.
 */
export function stopsSpeaker(): (s: Speaker) => Speaker {
  let current: Speaker | undefined;
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });
  return (s) => {
    current = s;
    return s;
  };
}

/** IPv4 and IPv6 unicast. */
export const mp: Capability[] = [
  { type: 'multiprotocol', afi: 1, safi: 1 },
  { type: 'multiprotocol', afi: 2, safi: 1 },
];

/** A graceful-restart capability (not restarting) preserving forwarding for the `afis` (SAFI 1). */
export const grCap = (restartTime: number, afis: number[], notification = false): Capability => ({
  type: 'graceful-restart',
  restarting: false,
  ...(notification ? { notification: true } : {}),
  restartTime,
  families: afis.map((afi) => ({ afi, safi: 1, forwardingPreserved: true })),
});

/** ORIGIN IGP and AS_PATH [asn], plus NEXT_HOP when given. */
export const baseAttrs = (asn: number, nextHop?: string): PathAttr[] => [
  { type: 'origin', value: 0 },
  { type: 'as-path', segments: [{ type: 'sequence', asns: [asn] }] },
  ...(nextHop ? [{ type: 'next-hop', addr: nextHop } as PathAttr] : []),
];
