// Speakers on an in-memory network (MemNet), stopped after each test.
import { afterEach } from 'vitest';
import { Speaker } from '../speaker.js';
import type { MemNet } from './memnet.js';

type SpeakerOptions = ConstructorParameters<typeof Speaker>[0];

/**
 * Registers an afterEach that stops every speaker `make` created in the test, except those
 * handed to `forget` (a test that stopped one itself).
 */
export function memSpeakers() {
  const running: Speaker[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop();
  });
  return {
    /** A speaker at `addr` with AS `asn` on `net`, router id `addr`. */
    make(net: MemNet, addr: string, asn: number, extra: Partial<SpeakerOptions> = {}): Speaker {
      const s = new Speaker({ asn, routerId: addr, transport: net.transport(addr), ...extra });
      net.register(addr, s);
      running.push(s);
      return s;
    },
    forget(s: Speaker): void {
      const i = running.indexOf(s);
      if (i !== -1) running.splice(i, 1);
    },
  };
}
