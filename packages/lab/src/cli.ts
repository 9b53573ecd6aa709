#!/usr/bin/env node
// podnet-lab: `npm run lab -- <command>` (see ../README.md).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { realClusterUp } from './cluster/cli.js';
import { RealCluster } from './cluster/real.js';
import { LabError, LabErrorCode } from './errors.js';
import { agentPeerTable, matrix, peerTable, podTable, summary } from './report.js';
import { DEFAULT_PREFIX, DEFAULT_STATE_DIR, Lab } from './runner.js';
import { readState } from './state.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const usage = `usage: npm run lab -- [command] [options]

commands:
  up [service…]          bring the lab up (default), then print the reachability matrix
  status                 services, pods, BGP peers and the reachability matrix of a running lab
  down                   remove every namespace, process and file the lab created
  logs <service>         print a service's log
  exec <service|pod> -- <cmd…>   run a command inside a service's (or a pod's) namespace
  scenario <name>        run the test/ scenario <name> (e.g. reachability) with vitest

options:
  --compose <file>       compose file (default: compose.yaml at the repository root)
  --profile <name>       enable a compose profile (repeatable), e.g. --profile frr
  --pods <n>             pods per node (default: x-podnet.podsPerNode)
  --state-dir <dir>      state, logs and generated files (default ${DEFAULT_STATE_DIR})
  --prefix <p>           namespace prefix (default ${DEFAULT_PREFIX})
  --kubeconfig <file>    use this outside API server (e.g. a real kube-apiserver) instead of the
                         compose apiserver service; down deletes the lab's objects there
  --cluster real         a real cluster on the namespaces: etcd, kube-apiserver, kube-scheduler,
                         kube-controller-manager, containerd + kubelet per node, podnet on it
                         (docs/real-cluster.md; builds Kubernetes once with scripts/kube-build.sh)
`;

function say(line: string): void {
  process.stdout.write(`[lab] ${line}\n`);
}

async function printReport(lab: Lab, probesOnly = false): Promise<boolean> {
  let allOk = true;
  if (lab.pods.length > 0) {
    console.log(`\npods\n${podTable(lab.pods)}`);
    for (const family of [4, 6] as const) {
      if (!lab.pods.some((p) => (family === 4 ? p.ipv4 : p.ipv6))) continue;
      say(`probing IPv${family} reachability (every pod ↔ every pod, client → every pod)…`);
      const probes = await lab.waitForReachability(family);
      const s = summary(probes);
      console.log(`\nreachability IPv${family}: ${s.ok}/${s.total} ok\n${matrix(lab.pods, probes)}`);
      for (const f of s.failed.slice(0, 10)) console.log(`  unreachable: ${f.from} → ${f.to} (${f.ip})`);
      if (s.failed.length > 0) allOk = false;
    }
  }
  if (probesOnly) return allOk;
  const peers = await lab.torPeerTables();
  if (peers.length > 0) console.log(`\nToR BGP peers\n${peerTable(peers)}`);
  for (const node of lab.nodes) {
    const st = await lab.agentStatus(node.name);
    const peers = (st as { peers?: unknown } | undefined)?.peers;
    if (Array.isArray(peers)) console.log(`\n${node.name} BGP peers\n${agentPeerTable(peers)}`);
    else
      console.log(
        `\n${node.name}: no /status from the agent (is it running? npm run lab -- logs ${node.name})`,
      );
  }
  return allOk;
}

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const rest = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({
    args: dash >= 0 ? argv.slice(0, dash) : argv,
    allowPositionals: true,
    options: {
      compose: { type: 'string' },
      profile: { type: 'string', multiple: true },
      pods: { type: 'string' },
      'state-dir': { type: 'string' },
      prefix: { type: 'string' },
      kubeconfig: { type: 'string' },
      cluster: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const [command = 'up', ...args] = positionals;
  const stateDir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  const saved = readState(stateDir);
  const composeFile = resolve(values.compose ?? saved?.composeFile ?? join(repoRoot, 'compose.yaml'));
  if (!existsSync(composeFile)) throw new LabError(LabErrorCode.usage, `no compose file at ${composeFile}`);
  let pods: number | undefined;
  if (values.pods !== undefined) {
    pods = Number(values.pods);
    if (!Number.isInteger(pods) || pods < 0 || pods > 200) {
      throw new LabError(
        LabErrorCode.usage,
        `--pods ${JSON.stringify(values.pods)}: expected an integer 0..200`,
      );
    }
  }
  const lab = new Lab({
    repoRoot,
    composeFile,
    stateDir,
    prefix: values.prefix ?? saved?.prefix ?? DEFAULT_PREFIX,
    profiles: values.profile ?? (command === 'up' ? [] : (saved?.profiles ?? [])),
    only: command === 'up' ? args : (saved?.only ?? []),
    ...(pods === undefined ? {} : { podsPerNode: pods }),
    ...(values.kubeconfig ? { kubeconfig: resolve(values.kubeconfig) } : {}),
    log: say,
  });
  const needRunning = () => {
    if (!lab.isUp)
      throw new LabError(
        LabErrorCode.notRunning,
        `no lab is running (no state in ${stateDir}); start one with: npm run lab`,
      );
  };

  if (values.cluster !== undefined && values.cluster !== 'real')
    throw new LabError(
      LabErrorCode.usage,
      `--cluster ${JSON.stringify(values.cluster)}: the one mode is "real"`,
    );
  const clusterConfig = { ...lab.config, log: say };
  // A real cluster's containers live in the pods' namespaces: its teardown goes first, on down and up.
  if ((command === 'down' || command === 'up') && existsSync(join(stateDir, 'cluster'))) {
    await new RealCluster(clusterConfig).down();
    if (command === 'down') return 0;
  }
  if (command === 'up' && values.cluster === 'real') return realClusterUp(clusterConfig);

  switch (command) {
    case 'up': {
      const services = lab.plan.services.map((s) => s.name).join(', ');
      say(`compose: ${composeFile} → ${services}`);
      try {
        await lab.up();
      } catch (err) {
        say(`up failed; what came up is left for inspection (npm run lab -- logs <service>).`);
        say(`remove it with: npm run lab -- down${values['state-dir'] ? ` --state-dir ${stateDir}` : ''}`);
        throw err;
      }
      const ok = await printReport(lab);
      if (!ok) {
        say('some pods are not reachable (see the matrix above). The lab is left running: inspect it with');
        say(
          '  npm run lab -- logs <service>   |   npm run lab -- exec node-a -- ip route   |   npm run lab -- down',
        );
        return 1;
      }
      say(`lab is up (state in ${stateDir}). Remove it with: npm run lab -- down`);
      return 0;
    }
    case 'status': {
      needRunning();
      for (const p of lab.statusSummary())
        say(
          `${p.service.padEnd(18)} pid ${String(p.pid).padEnd(8)} ${p.running ? 'running' : 'NOT RUNNING'}`,
        );
      return (await printReport(lab)) ? 0 : 1;
    }
    case 'down':
      await lab.down();
      return 0;
    case 'logs': {
      const name = args[0];
      if (!name) throw new LabError(LabErrorCode.usage, 'logs: name a service');
      const log = join(stateDir, name, `${name}.log`);
      if (!existsSync(log)) throw new LabError(LabErrorCode.usage, `logs: no log for ${name} at ${log}`);
      process.stdout.write(readFileSync(log));
      return 0;
    }
    case 'exec': {
      needRunning();
      const name = args[0];
      if (!name || rest.length === 0)
        throw new LabError(LabErrorCode.usage, 'exec: usage: exec <service|pod> -- <command…>');
      const pod = lab.pods.find((p) => p.name === name);
      const ns = pod ? pod.ns : lab.service(name).ns;
      const r = spawnSync('ip', ['netns', 'exec', ns, ...rest], { stdio: 'inherit' });
      return r.status ?? 1;
    }
    case 'scenario': {
      const name = args[0];
      const dir = join(repoRoot, 'test');
      if (!name)
        throw new LabError(LabErrorCode.usage, 'scenario: name one (a file in test/src without .test.ts)');
      if (!existsSync(join(dir, 'src', `${name}.test.ts`)))
        throw new LabError(LabErrorCode.usage, `scenario: no test/src/${name}.test.ts`);
      const r = spawnSync(
        process.execPath,
        [join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs'), 'run', `src/${name}.test.ts`],
        {
          cwd: dir,
          stdio: 'inherit',
        },
      );
      return r.status ?? 1;
    }
    default:
      throw new LabError(LabErrorCode.usage, `unknown command ${JSON.stringify(command)}\n${usage}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof LabError) process.stderr.write(`[lab] error ${err.code}: ${err.message}\n`);
    else
      process.stderr.write(
        `[lab] error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    process.exit(1);
  },
);
