import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Reachability } from './datastore.js';

const log = pino({ level: 'silent' });
const SILENT = 300_000;

/** Informer counters the test moves by hand, and a probe that counts its calls. */
function setup() {
  const counters = { heard: 0, errors: 0 };
  const probe = { calls: 0, fail: false };
  const gate = new Reachability(
    () => ({ ...counters }),
    async () => {
      probe.calls++;
      if (probe.fail) throw new Error('connect ECONNREFUSED');
    },
    { silentProbeMs: SILENT, log },
  );
  return { counters, probe, gate };
}

describe('Reachability', () => {
  it('makes no request while the watches keep talking, one per silence period otherwise', async () => {
    const { counters, probe, gate } = setup();
    // One simulated minute of 5 s ticks, with an event or bookmark now and then.
    for (let t = 0; t < 60_000; t += 5_000) {
      if (t % 20_000 === 0) counters.heard++;
      await gate.tick(t);
    }
    expect(probe.calls).toBe(0);
    expect(gate.reachable).toBe(true);
    // Ten simulated minutes of silence: one probe per five minutes.
    for (let t = 60_000; t <= 660_000; t += 5_000) await gate.tick(t);
    expect(probe.calls).toBe(2);
    expect(gate.reachable).toBe(true);
  });

  it('probes on an informer failure, and says unreachable while the probe fails', async () => {
    const { counters, probe, gate } = setup();
    await gate.tick(0);
    counters.errors++;
    probe.fail = true;
    await gate.tick(5_000);
    expect(probe.calls).toBe(1);
    expect(gate.reachable).toBe(false);
    // While unreachable it probes every tick, so recovery is seen promptly.
    await gate.tick(10_000);
    expect(probe.calls).toBe(2);
    probe.fail = false;
    await gate.tick(15_000);
    expect(gate.reachable).toBe(true);
    // Back to quiet: no request while nothing fails and the silence is short.
    await gate.tick(20_000);
    expect(probe.calls).toBe(3);
  });

  it('takes a word from an informer as reachable again without a request', async () => {
    const { counters, probe, gate } = setup();
    await gate.tick(0);
    counters.errors++;
    probe.fail = true;
    await gate.tick(5_000);
    expect(gate.reachable).toBe(false);
    counters.heard++;
    await gate.tick(10_000);
    expect(gate.reachable).toBe(true);
    expect(probe.calls).toBe(1);
  });
});
