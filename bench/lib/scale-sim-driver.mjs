// The scale-sim driver, inside the bench's namespace beside the API server, with the admin token
// (its requests are not counted as any node's): installs the CRDs and objects, gives every node
// one block through @podnet/ipam (as the CNI plugin's first ADD would), reads the API server's
// per-user request counts, and runs the pod churn.
// Usage: node scale-sim-driver.mjs <kubeconfig>. Commands on stdin, one JSON object a line:
//   {"cmd":"setup","nodes":[{name,address}],"rrs":[address],"podCidr"}  → {"event":"setup-done","ms"}
//   {"cmd":"counts"}                                                    → {"event":"counts","users","t"}
//   {"cmd":"churn","pods":5000,"concurrency":16}                        → {"event":"churn-done",...}
// Errors: {"event":"error","error"}.
import { pino } from 'pino';
import { Ipam } from '../../packages/ipam/dist/index.js';
import { BGPCONFIGURATION, BGPPEER, IPPOOL, installCrds, KubeClient } from '../../packages/k8s/dist/index.js';

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const logger = pino({ level: 'error' }, pino.destination(2));
const client = new KubeClient({ kubeconfigPath: process.argv[2] });
const ipam = new Ipam({ client, logger });
const server = client.kc.getCurrentCluster().server;
const token = client.kc.getCurrentUser().token;

/** Runs fn over items with at most `limit` in flight. */
async function pool(items, limit, fn) {
  let next = 0;
  const errors = [];
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++];
        try {
          await fn(item);
        } catch (err) {
          errors.push(err.message);
        }
      }
    }),
  );
  return errors;
}

async function setup({ nodes, rrs, podCidr }) {
  const t0 = Date.now();
  await installCrds(client);
  await client
    .resource(IPPOOL)
    .create({ metadata: { name: 'sim-pods' }, spec: { cidr: podCidr, blockSize: 26 } });
  await client
    .resource(BGPCONFIGURATION)
    .create({ metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMesh: false } });
  for (const [i, peerIP] of rrs.entries())
    await client
      .resource(BGPPEER)
      .create({ metadata: { name: `rr-${i + 1}` }, spec: { peerIP, asNumber: 64512 } });
  const errors = await pool(nodes, 16, async (n) => {
    await client.core.createNode({
      body: {
        metadata: {
          name: n.name,
          labels: { 'kubernetes.io/hostname': n.name },
          annotations: { 'podnet.io/ipv4-address': `${n.address}/32` },
        },
      },
    });
    await ipam.allocate({ handle: `sim.${n.name}`, node: n.name, ipv4: true, ipv6: false });
  });
  if (errors.length) throw new Error(`setup: ${errors.length} nodes failed, first: ${errors[0]}`);
  return Date.now() - t0;
}

async function counts() {
  const r = await fetch(`${server}/debug/podnet/requests`, { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET /debug/podnet/requests: HTTP ${r.status}`);
  return (await r.json()).users;
}

/** Creates `pods` pods round-robin over the nodes (IPAM allocation + Pod), then deletes them all. */
async function churn({ pods, concurrency, nodes }) {
  const t0 = Date.now();
  const items = Array.from({ length: pods }, (_, k) => ({ k, node: nodes[k % nodes.length] }));
  const createErrors = await pool(items, concurrency, async ({ k, node }) => {
    const handle = `sim.churn-${k}`;
    const r = await ipam.allocate({
      handle,
      node,
      ipv4: true,
      ipv6: false,
      attrs: { namespace: 'default', pod: `churn-${k}` },
    });
    await client.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: `churn-${k}`, annotations: { 'podnet.io/podIPs': r.ipv4.cidr } },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'pause' }] },
      },
    });
  });
  const created = Date.now();
  const deleteErrors = await pool(items, concurrency, async ({ k }) => {
    await client.core.deleteNamespacedPod({ name: `churn-${k}`, namespace: 'default' });
    await ipam.releaseByHandle(`sim.churn-${k}`);
  });
  return {
    createMs: created - t0,
    deleteMs: Date.now() - created,
    errors: createErrors.length + deleteErrors.length,
    firstError: createErrors[0] ?? deleteErrors[0],
  };
}

let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (!line) continue;
    const c = JSON.parse(line);
    const run =
      c.cmd === 'setup'
        ? setup(c).then((ms) => ({ event: 'setup-done', ms }))
        : c.cmd === 'counts'
          ? counts().then((users) => ({ event: 'counts', users, t: Date.now() }))
          : c.cmd === 'churn'
            ? churn(c).then((r) => ({ event: 'churn-done', ...r }))
            : Promise.reject(new Error(`unknown command ${c.cmd}`));
    run.then(out, (err) => out({ event: 'error', error: `${c.cmd}: ${err.message}` }));
  }
});
process.stdin.on('end', async () => {
  await Promise.race([client.close(), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(0);
});
