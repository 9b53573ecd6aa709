// Heap cost of one remote pod in the agent's policy watch: node --expose-gc policy-memory.mjs [N] [whole]
// Builds N realistic core/v1 Pods one at a time (dual stack, 4 labels from 50 workloads in 10
// namespaces, a pod-template-hash, a named container port, managedFields, status conditions),
// keeps only what the Pod informer's store keeps (key "ns/name" -> projectPod(...)), and prints the
// heap growth per pod after full GCs as JSON. `whole` keeps the parsed objects instead (what an
// informer of whole Pods holds), for comparison.
import { Interner, projectPod } from '../../dist/policy-sync.js';

const n = Number(process.argv[2] ?? 20000);
const whole = process.argv[3] === 'whole';
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc');

function rawPod(i) {
  const w = i % 50;
  const ns = `team-${w % 10}`;
  const name = `web-${w}-7d9f8c6b5-${i.toString(36).padStart(5, 'x')}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      namespace: ns,
      name,
      uid: `0c5d3a8e-${i.toString(16).padStart(4, '0')}-4c1b-9f7e-2d6a5b4c3e2f`,
      resourceVersion: String(100000 + i),
      labels: {
        app: `web-${w}`,
        tier: w % 2 ? 'frontend' : 'backend',
        'pod-template-hash': `7d9f8c6b5${w}`,
        env: 'prod',
      },
      annotations: { 'podnet.io/ipv4': `10.244.${i >> 8}.${i & 255}` },
      managedFields: [
        { manager: 'kubelet', operation: 'Update', fieldsV1: { 'f:status': { 'f:podIPs': {} } } },
      ],
    },
    spec: {
      nodeName: `node-${i % 100}`,
      containers: [
        { name: 'web', image: 'nginx:1.27', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
      ],
    },
    status: {
      phase: 'Running',
      podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      podIPs: [
        { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
        { ip: `fd00:244::${i.toString(16)}` },
      ],
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    },
  };
}

const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const interner = new Interner();
const store = new Map();
// Warm up the code paths and the interner's shared values, then measure from an empty store.
for (let i = 0; i < 200; i++) projectPod(rawPod(i), interner);
const before = heap();
for (let i = 0; i < n; i++) {
  const raw = rawPod(i);
  const p = whole ? raw : projectPod(raw, interner);
  store.set(`${p.metadata.namespace}/${p.metadata.name}`, p);
}
const after = heap();
process.stdout.write(
  `${JSON.stringify({ pods: store.size, bytes_per_remote_pod: Math.round((after - before) / n) })}\n`,
);
