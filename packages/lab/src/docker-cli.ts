// `npm run lab -- --engine docker <up|status|kubeconfig|down>`: the lab's verbs over docker compose.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DockerLab } from './docker.js';
import { LabError, LabErrorCode } from './errors.js';
import { agentPeerTable, matrix, peerTable, podTable, summary } from './report.js';

export interface DockerCliOptions {
  composeFile: string;
  profiles: string[];
  pods?: string;
  /** The command's arguments (`kubeconfig FILE`). */
  args?: string[];
  log: (line: string) => void;
}

/** Pods, the reachability matrix (IPv4 and IPv6), the ToRs' and the agents' peer tables. */
export async function printDockerReport(lab: DockerLab, say: (line: string) => void): Promise<boolean> {
  let ok = true;
  console.log(`\npods\n${podTable(lab.pods)}`);
  for (const family of [4, 6] as const) {
    if (!lab.pods.some((p) => (family === 4 ? p.ipv4 : p.ipv6))) continue;
    say(`probing IPv${family} reachability (every pod ↔ every pod, client → every pod)…`);
    const probes = await lab.waitForReachability(family);
    const s = summary(probes);
    console.log(`\nreachability IPv${family}: ${s.ok}/${s.total} ok\n${matrix(lab.pods, probes)}`);
    for (const f of s.failed.slice(0, 10)) console.log(`  unreachable: ${f.from} → ${f.to} (${f.ip})`);
    if (s.failed.length > 0) ok = false;
  }
  const peers = await lab.torPeerTables();
  if (peers.length > 0) console.log(`\nToR BGP peers\n${peerTable(peers)}`);
  for (const node of lab.nodes) {
    const st = (await lab.agentStatus(node.name)) as { peers?: unknown } | undefined;
    if (Array.isArray(st?.peers)) console.log(`\n${node.name} BGP peers\n${agentPeerTable(st.peers)}`);
    else console.log(`\n${node.name}: no /status from the agent (docker compose logs ${node.name})`);
  }
  return ok;
}

export async function dockerMain(command: string, o: DockerCliOptions): Promise<number> {
  let podsPerNode: number | undefined;
  if (o.pods !== undefined) {
    podsPerNode = Number(o.pods);
    if (!Number.isInteger(podsPerNode) || podsPerNode < 0 || podsPerNode > 200)
      throw new LabError(LabErrorCode.usage, `--pods ${JSON.stringify(o.pods)}: expected an integer 0..200`);
  }
  const lab = new DockerLab({
    composeFile: o.composeFile,
    profiles: o.profiles,
    ...(podsPerNode === undefined ? {} : { podsPerNode }),
    log: o.log,
  });
  switch (command) {
    case 'up': {
      await lab.up();
      const ok = await printDockerReport(lab, o.log);
      console.log(
        `\nkubeconfig for kubectl on the host (API server over HTTPS, its CA, the lab token):\n${await lab.hostKubeconfig()}`,
      );
      o.log('kubectl: npm run lab -- --engine docker kubeconfig FILE; KUBECONFIG=FILE kubectl get pods -A');
      o.log(
        ok
          ? 'lab is up under docker compose. Remove it with: npm run lab -- --engine docker down'
          : 'some pods are not reachable (see above); the lab is left running for inspection',
      );
      return ok ? 0 : 1;
    }
    case 'status':
      await lab.loadPods();
      return (await printDockerReport(lab, o.log)) ? 0 : 1;
    case 'kubeconfig': {
      const text = await lab.hostKubeconfig();
      const file = o.args?.[0];
      if (!file) {
        process.stdout.write(text);
        return 0;
      }
      writeFileSync(resolve(file), text, { mode: 0o600 });
      o.log(
        `kubeconfig written to ${resolve(file)}; use it with: export KUBECONFIG=${resolve(file)}; kubectl get pods -A`,
      );
      return 0;
    }
    case 'down':
      await lab.down();
      return 0;
    default:
      throw new LabError(
        LabErrorCode.usage,
        `--engine docker: unknown command ${JSON.stringify(command)} (up, status, kubeconfig [FILE], down)`,
      );
  }
}
