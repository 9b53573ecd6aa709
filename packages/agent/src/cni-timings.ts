// The standalone CNI plugin's latencies, into podnet_cni_duration_seconds{via="plugin"}: the plugin
// appends a record per ADD/DEL/CHECK to `<dir>/timings` (@podnet/cni/timing). Each sweep reads and
// removes the file set aside by the previous sweep, then sets the current one aside, so a writer
// that opened the file just before the rename has long finished when it is read.
// Bounded: one sweep reads at most MAX_READ_BYTES (the plugin stops appending at 1 MiB); a bad line
// is counted and logged (the first of each sweep, naming the field and the value), never kept.
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTimingLine, TIMINGS_FILE } from '@podnet/cni/timing';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

const MAX_READ_BYTES = 2 << 20;
const ASIDE = `${TIMINGS_FILE}.reading`;

export interface CniTimingsOptions {
  dir: string;
  metrics: Pick<Metrics, 'cniDuration' | 'cniTimingRecordsDropped'>;
  log: Logger;
  /** Between sweeps (default 1 s). */
  intervalMs?: number;
}

export class CniTimings {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(private readonly o: CniTimingsOptions) {}

  /** Makes the directory (the plugin writes only where it exists) and sweeps on an interval. */
  async start(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true, mode: 0o755 });
    this.timer = setInterval(() => void this.sweep(), this.o.intervalMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /** One sweep; concurrent calls share it. Never throws. */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce()
      .catch((err: unknown) => this.o.log.warn({ err, dir: this.o.dir }, 'CNI timing records: sweep failed'))
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    const aside = join(this.o.dir, ASIDE);
    const text = await readBounded(aside);
    if (text !== undefined) {
      await unlink(aside).catch(() => undefined);
      this.observe(text.text, aside, text.truncated);
    }
    await rename(join(this.o.dir, TIMINGS_FILE), aside).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  private observe(text: string, file: string, truncated: boolean): void {
    const { cniDuration, cniTimingRecordsDropped } = this.o.metrics;
    const lines = text.split('\n');
    // A truncated read ends mid-line: that line is not a record.
    if (truncated) lines.pop();
    let firstBad: string | undefined;
    let bad = 0;
    for (const line of lines) {
      if (line === '') continue;
      const r = parseTimingLine(line);
      if ('record' in r) {
        cniDuration.observe(
          { command: r.record.command, result: r.record.result, via: 'plugin' },
          r.record.seconds,
        );
      } else {
        bad++;
        firstBad ??= r.error;
      }
    }
    if (bad) {
      cniTimingRecordsDropped.inc({ reason: 'invalid' }, bad);
      this.o.log.warn({ file, invalid: bad, first: firstBad }, `CNI timing records: ${bad} invalid, dropped`);
    }
    if (truncated) {
      cniTimingRecordsDropped.inc({ reason: 'too-many' });
      this.o.log.warn(
        { file, readBytes: MAX_READ_BYTES },
        'CNI timing records: file over the read bound, rest dropped',
      );
    }
  }
}

async function readBounded(path: string): Promise<{ text: string; truncated: boolean } | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const buf = Buffer.alloc(Math.min((await fh.stat()).size, MAX_READ_BYTES));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const size = (await fh.stat()).size;
    return { text: buf.subarray(0, bytesRead).toString('utf8'), truncated: size > bytesRead };
  } finally {
    await fh.close();
  }
}
