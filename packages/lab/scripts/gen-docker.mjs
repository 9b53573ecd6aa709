// Regenerates deploy/docker/lab-tor/{bird,frr}.conf and deploy/docker/lab-config/kubeconfig from
// compose.yaml (the namespace runner generates the same text at `up`).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { apiServerUrl, birdConfig, frrConfig, kubeconfig, parseCompose } from '../dist/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const p = parseCompose(readFileSync(`${root}compose.yaml`, 'utf8'));
const bird = p.services.find((s) => s.role === 'tor' && s.daemon === 'bird');
const frr = p.services.find((s) => s.role === 'tor' && s.daemon === 'frr');
if (bird)
  writeFileSync(`${root}deploy/docker/lab-tor/bird.conf`, birdConfig(bird, p.services, p.settings.bgp));
if (frr) writeFileSync(`${root}deploy/docker/lab-tor/frr.conf`, frrConfig(frr, p.services, p.settings.bgp));
writeFileSync(
  `${root}deploy/docker/lab-config/kubeconfig`,
  kubeconfig(apiServerUrl(p) ?? 'http://127.0.0.1:6443', p.settings.apiServer.token),
);
console.log('regenerated deploy/docker/lab-tor/bird.conf, frr.conf and deploy/docker/lab-config/kubeconfig');
