// Helpers the benchmarks share for the processes they start.
import { readFileSync } from 'node:fs';

/** Calls onLine with each JSON object a child prints on stdout, one per line; other lines are skipped. */
export function jsonLines(child, onLine) {
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        onLine(JSON.parse(l));
      } catch {
        /* not JSON */
      }
    }
  });
}

/** Resident set size of a process in bytes (VmRSS), NaN when it cannot be read. */
export function vmRss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}
