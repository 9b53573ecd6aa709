#!/usr/bin/env node
// podnet-lab: `npm run lab -- <command>` (see ../README.md).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { realClusterUp } from './cluster/cli.js';
import { RealCluster } from './cluster/real.js';
import { dockerMain } from './docker-cli.js';
import { LabError, LabErrorCode } from './errors.js';
import { expectedFor } from './models.js';
import { agentPeerTable, matrix, peerTable, podTable, summary } from './report.js';
import { DEFAULT_API_HOST_PORT, DEFAULT_PREFIX, DEFAULT_STATE_DIR, Lab } from './runner.js';
import { exitWhenFlushed } from './sh.js';
import { readState } from './state.js';
import { renderTable, rowProblems } from './table.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const usage = `usage: npm run lab -- [command] [options]

commands:
  up [service…]          bring the lab up (default), then print the reachability matrix
  status                 services, pods, BGP peers and the reachability matrix of a running lab
  down                   remove every namespace, process and file the lab created
  kubeconfig [file]      write the kubeconfig kubectl on the host uses (default <state-dir>/kubeconfig)
  logs <service>         print a service's log
  exec <service|pod> -- <cmd…>   run a command inside a service's (or a pod's) namespace
  scenario <name>        run the test/ scenario <name> (e.g. reachability) with vitest
  bootstrap              write the lab's API objects to --kubeconfig's server, then exit (what
                         compose's lab-init service runs; profiles from $PODNET_PROFILES)

options:
  --compose <file>       compose file (default: compose.yaml at the repository root)
  --profile <name>       enable a compose profile (repeatable), e.g. --profile frr
  --model <name>         network model from x-podnet.models: flat (default), island, isolated
  --pods <n>             pods per node (default: x-podnet.podsPerNode)
  --state-dir <dir>      state, logs and generated files (default ${DEFAULT_STATE_DIR})
  --prefix <p>           namespace prefix (default ${DEFAULT_PREFIX})
  --engine docker        run the verbs up, status, kubeconfig [file] (printed when no file), down
                         on docker compose instead (docs/docker.md)
  --kubeconfig <file>    use this outside API server (e.g. a real kube-apiserver) instead of the
                         compose apiserver service; down deletes the lab's objects there
  --api-port <n>         host loopback port forwarded to the lab's API server, for kubectl
                         (default ${DEFAULT_API_HOST_PORT}; 0 for none)
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
      // Where the model keeps the outside from the pods, the matrix is pod ↔ pod; the model's table
      // below shows what the outside sees.
      const clients = expectedFor(lab.model, 'external→pod') !== 'none';
      say(
        `probing IPv${family} reachability (every pod ↔ every pod${clients ? ', client → every pod' : ''})…`,
      );
      const probes = await lab.waitForReachability(family, { clients });
      const s = summary(probes);
      console.log(`\nreachability IPv${family}: ${s.ok}/${s.total} ok\n${matrix(lab.pods, probes)}`);
      for (const f of s.failed.slice(0, 10)) console.log(`  unreachable: ${f.from} → ${f.to} (${f.ip})`);
      if (s.failed.length > 0) allOk = false;
    }
  }
  if (lab.pods.length > 0 && lab.plan.services.some((s) => s.role === 'client')) {
    say(
      `probing the ${lab.model.name} model's table (TCP and UDP echo: the source address each receiver saw)…`,
    );
    const rows = await lab.waitForTable();
    console.log(`\n${renderTable(lab.model, rows)}`);
    if (rows.some((r) => rowProblems(r).length > 0)) allOk = false;
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

/** The kubeconfig for kubectl on the host, printed after `up` (also in <state-dir>/kubeconfig). */
function printKubeconfig(lab: Lab): void {
  let text: string;
  try {
    text = lab.hostKubeconfig();
  } catch (err) {
    say(`no kubeconfig for the host: ${(err as Error).message}`);
    return;
  }
  console.log(
    `\nkubeconfig for kubectl on the host (API server over HTTPS, its CA, the lab token):\n${text}`,
  );
  say(
    `kubectl: export KUBECONFIG=${lab.config.kubeconfig ?? lab.hostKubeconfigPath}; kubectl get pods -A   (or: npm run lab -- kubeconfig FILE)`,
  );
}

/**
 * `podnet-lab bootstrap --kubeconfig <file>`: compose's lab-init service. The active compose
 * profiles come from --profile or $PODNET_PROFILES (compose.yaml passes COMPOSE_PROFILES).
 */
async function bootstrap(
  kc: string | undefined,
  compose: string | undefined,
  profiles: string[] | undefined,
) {
  if (!kc) throw new LabError(LabErrorCode.usage, 'bootstrap: --kubeconfig <file> names the API server');
  // The network model (flat, island, isolated; x-podnet.models): the pools and ToR peers it writes.
  const model = process.env.PODNET_MODEL?.trim() || 'flat';
  const fromEnv = (process.env.PODNET_PROFILES ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const lab = new Lab({
    repoRoot,
    composeFile: resolve(compose ?? join(repoRoot, 'compose.yaml')),
    stateDir: DEFAULT_STATE_DIR,
    prefix: DEFAULT_PREFIX,
    profiles: profiles ?? fromEnv,
    kubeconfig: resolve(kc),
    model,
    log: say,
  });
  say(
    `bootstrap: model ${lab.model.name}, profiles ${(profiles ?? fromEnv).join(',') || '(none)'}, API ${lab.external?.server.origin}`,
  );
  await lab.bootstrap();
  return 0;
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
      model: { type: 'string' },
      pods: { type: 'string' },
      'state-dir': { type: 'string' },
      prefix: { type: 'string' },
      kubeconfig: { type: 'string' },
      'api-port': { type: 'string' },
      engine: { type: 'string' },
      cluster: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const [command = 'up', ...args] = positionals;
  if (values.engine !== undefined && values.engine !== 'namespaces') {
    if (values.engine !== 'docker')
      throw new LabError(
        LabErrorCode.usage,
        `--engine ${JSON.stringify(values.engine)}: expected docker or namespaces`,
      );
    // The docker engine prints the flat model's matrix (every pod reachable from the client); the
    // other models run under compose with PODNET_MODEL (docs/docker.md) but have no table there yet.
    if (values.model !== undefined && values.model !== 'flat')
      throw new LabError(
        LabErrorCode.usage,
        `--model ${JSON.stringify(values.model)} with --engine docker: its table runs on namespaces only (npm run lab -- --model ${values.model}); under compose, PODNET_MODEL=${values.model} docker compose up -d writes the model's pools and peers`,
      );
    return dockerMain(command, {
      composeFile: resolve(values.compose ?? join(repoRoot, 'compose.yaml')),
      profiles: values.profile ?? [],
      ...(values.pods !== undefined ? { pods: values.pods } : {}),
      args,
      log: say,
    });
  }
  if (command === 'bootstrap') return bootstrap(values.kubeconfig, values.compose, values.profile);
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
  let apiHostPort: number | undefined;
  if (values['api-port'] !== undefined) {
    apiHostPort = Number(values['api-port']);
    if (!Number.isInteger(apiHostPort) || apiHostPort < 0 || apiHostPort > 65535)
      throw new LabError(
        LabErrorCode.usage,
        `--api-port ${JSON.stringify(values['api-port'])}: expected a port 0..65535 (0: no host forward)`,
      );
  }
  // Like the profiles: `up` runs the model named (default flat), other commands the one that is up.
  const model = values.model ?? (command === 'up' ? undefined : saved?.model);
  const lab = new Lab({
    repoRoot,
    composeFile,
    stateDir,
    prefix: values.prefix ?? saved?.prefix ?? DEFAULT_PREFIX,
    profiles: values.profile ?? (command === 'up' ? [] : (saved?.profiles ?? [])),
    ...(model ? { model } : {}),
    only: command === 'up' ? args : (saved?.only ?? []),
    ...(pods === undefined ? {} : { podsPerNode: pods }),
    ...(values.kubeconfig ? { kubeconfig: resolve(values.kubeconfig) } : {}),
    apiHostPort: apiHostPort ?? DEFAULT_API_HOST_PORT,
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
      say(`model: ${lab.model.name} (${lab.model.description})`);
      try {
        await lab.up();
      } catch (err) {
        say(`up failed; what came up is left for inspection (npm run lab -- logs <service>).`);
        say(`remove it with: npm run lab -- down${values['state-dir'] ? ` --state-dir ${stateDir}` : ''}`);
        throw err;
      }
      const ok = await printReport(lab);
      printKubeconfig(lab);
      if (!ok) {
        say(
          `some pods are not reachable, or the ${lab.model.name} model's table is not what it promises (see above). The lab is left running: inspect it with`,
        );
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
      say(`model: ${lab.model.name} (${lab.model.description})`);
      for (const p of lab.statusSummary())
        say(
          `${p.service.padEnd(18)} pid ${String(p.pid).padEnd(8)} ${p.running ? 'running' : 'NOT RUNNING'}`,
        );
      return (await printReport(lab)) ? 0 : 1;
    }
    case 'down':
      await lab.down();
      return 0;
    case 'kubeconfig': {
      needRunning();
      const file = resolve(args[0] ?? lab.hostKubeconfigPath);
      writeFileSync(file, lab.hostKubeconfig(), { mode: 0o600 });
      say(`kubeconfig written to ${file}; use it with: export KUBECONFIG=${file}; kubectl get pods -A`);
      return 0;
    }
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
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    if (err instanceof LabError) process.stderr.write(`[lab] error ${err.code}: ${err.message}\n`);
    else
      process.stderr.write(
        `[lab] error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    process.exit(1);
  },
);
