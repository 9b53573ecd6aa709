// Runs one bgp-ts Speaker in this process (started by tests inside a network namespace with
// `ip netns exec`), driven by JSON lines on stdin: {"id":1,"op":"addPeer","args":[{...}]}.
// Replies {"id":1,"ok":true,"result":...}; events arrive as {"event":"bestpath","data":...}.
// The process exits when stdin closes, so it never outlives the test that started it.
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Speaker } from '../dist/index.js';

const opts = JSON.parse(process.argv[2] ?? '{}');
const logger = {
  debug() {},
  info(o, m) {
    if (process.env.BGP_HARNESS_LOG) process.stderr.write(`${JSON.stringify({ ...o, msg: m })}\n`);
  },
  warn(o, m) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', ...o, msg: m })}\n`);
  },
  error(o, m) {
    process.stderr.write(`${JSON.stringify({ level: 'error', ...o, msg: m })}\n`);
  },
  child() {
    return logger;
  },
};
const speaker = new Speaker({ ...opts, logger });
const send = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
speaker.on('bestpath', (data) => send({ event: 'bestpath', data }));
speaker.on('peer', (data) => send({ event: 'peer', data }));
speaker.on('max-prefixes', (data) => send({ event: 'max-prefixes', data }));

const ops = {
  start: () => speaker.start(),
  stop: (o) => speaker.stop(o),
  addPeer: (c) => speaker.addPeer(c),
  updatePeer: (c) => speaker.updatePeer(c),
  removePeer: (a, port) => speaker.removePeer(a, port),
  originate: (p, a) => speaker.originate(p, a),
  withdraw: (p) => speaker.withdraw(p),
  locRib: () => speaker.locRib(),
  lookup: (p) => speaker.lookup(p) ?? null,
  peers: () => speaker.peers(),
  adjRibIn: (a) => speaker.adjRibIn(a),
  adjRibOut: (a) => speaker.adjRibOut(a),
  listenPort: () => speaker.listenPort ?? null,
  // For leak tests: open file descriptors, and the handles keeping the event loop alive.
  fds: () => readdirSync('/proc/self/fd').length,
  resources: () => process.getActiveResourcesInfo(),
  memory: () => process.memoryUsage(),
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
    const fn = ops[msg.op];
    if (!fn) throw new Error(`unknown op ${msg.op}`);
    const result = await fn(...(msg.args ?? []));
    send({ id: msg.id, ok: true, result: result ?? null });
  } catch (err) {
    send({ id: msg?.id, ok: false, error: String(err?.message ?? err) });
  }
});
rl.on('close', async () => {
  await speaker.stop().catch(() => {});
  process.exit(0);
});
