// Run inside a pod's network namespace by bench/policy.mjs (`ip netns exec NS node np-probe.mjs`).
// Reads one JSON command a line on stdin:
//   {"id":1,"want":"drop"|"allow","port":80,"targets":["10.244.0.5",…]}  watch those targets
//   {"quit":true}                                                          exit
// For each target it sends one UDP datagram every INTERVAL_MS, each from a fresh socket (a new
// source port, so a new conntrack entry: an earlier allowed flow cannot carry later packets through
// as `established`), and counts the datagram answered when the echo server's reply arrives within
// TIMEOUT_MS. The target has flipped at the send time of the first of RUN consecutive datagrams
// with the wanted outcome; it prints {"id","target","at"} (wall clock in ms, sub-ms precision, the
// same clock as the bench's) or {"id","target","timeout":true} after LIMIT_MS, then stops that target.
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const INTERVAL_MS = 4;
const TIMEOUT_MS = 300;
const RUN = 3;
const LIMIT_MS = 30_000;
const now = () => performance.timeOrigin + performance.now();
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

function watch(id, target, port, want) {
  const started = now();
  const outcomes = [];
  let next = 0;
  let scanned = 0;
  let run = 0;
  let first = 0;
  let done = false;
  const finish = (o) => {
    done = true;
    clearInterval(timer);
    say({ id, target, ...o });
  };
  const check = () => {
    while (!done && outcomes[scanned] !== undefined) {
      const o = outcomes[scanned++];
      if (o.ok === (want === 'allow')) {
        if (run++ === 0) first = o.at;
        if (run >= RUN) finish({ at: first });
      } else run = 0;
    }
  };
  const timer = setInterval(() => {
    if (done) return;
    if (now() - started > LIMIT_MS) return finish({ timeout: true });
    const seq = next++;
    const at = now();
    const s = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(to);
      s.close();
      outcomes[seq] = { at, ok };
      check();
    };
    const to = setTimeout(() => settle(false), TIMEOUT_MS);
    s.on('message', () => settle(true));
    s.on('error', () => settle(false));
    s.send('probe', port, target);
  }, INTERVAL_MS);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line);
  if (c.quit) process.exit(0);
  for (const t of c.targets) watch(c.id, t, c.port, c.want);
});
rl.on('close', () => process.exit(0));
// Never outlive the bench by much.
setTimeout(() => process.exit(0), 3 * 3600_000).unref();
