// podnetctl's argument handling, separate from the process so tests call it directly.
import { parseArgs } from 'node:util';
import { podView } from '@podnet/agent';
import { Ipam } from '@podnet/ipam';
import { IPAMBLOCK, KubeClient, NODESTATUS, type NodeStatus } from '@podnet/k8s';
import { parseIp, podInterfaceName } from '@podnet/net';
import { podFromObject } from '@podnet/policy';
import { DEFAULT_AGENT_URL, fetchAgentStatus } from './agent-status.js';
import { clusterStatus } from './cluster.js';
import {
  type CommandResult,
  findLeaks,
  ipamCheck,
  ipamRelease,
  ipamShow,
  nodeStatus,
  routes,
} from './commands.js';
import { completion } from './completion.js';
import { CtlError } from './errors.js';
import { OUTPUT_FORMATS, type OutputFormat, render } from './format.js';
import { dumpPodnetRoutes, PODNET_ROUTE_PROTOCOL, readKernel } from './kernel.js';
import { parsePolicyQuery, policyExplain, policyHook, queryText } from './policy.js';
import { type LocalNode, type PolicyHook, type TracePod, type TraceTarget, traceResult } from './trace.js';

/** NetworkPolicies, pods and namespaces as @podnet/policy's translation reads them. */
async function readPolicyCluster(client: KubeClient) {
  const [policies, pods, namespaces] = await Promise.all([
    client.custom.listClusterCustomObject({
      group: 'networking.k8s.io',
      version: 'v1',
      plural: 'networkpolicies',
    }),
    client.listPods(),
    client.core.listNamespace(),
  ]);
  return {
    policies: (policies as { items?: unknown[] }).items ?? [],
    pods: pods.map(podFromObject),
    namespaces: namespaces.items.map((n) => ({
      name: n.metadata?.name ?? '',
      labels: n.metadata?.labels ?? {},
    })),
  };
}

export const USAGE = `usage: podnetctl [--output table|json|yaml] COMMAND

Commands:
  node status              BGP peers of the local agent: type, state, since, prefixes in/out
  cluster status           every node's readiness and BGP sessions, from the NodeStatus objects
  trace NS/POD NS/POD|IP [--port N] [--protocol tcp|udp|sctp|icmp]
                           the path hop by hop: API state, the kernel of the node podnetctl runs
                           on, and the NetworkPolicy verdict on each side (for that port, else for
                           any port: ok = every port allowed, partial = only some)
  routes [--netns NAME]    podnet's routes in the kernel (the agent's route protocol, 213 by default)
                           joined with their source
  ipam show                pools, blocks per node, utilisation
  ipam check               inconsistencies and leaked addresses (exit code 1 when any)
  ipam release --ip ADDR   free one address
  policy NAMESPACE/POD     NetworkPolicies selecting the pod, its effective ingress/egress allow list
  completion bash|zsh      shell completion script (source <(podnetctl completion bash))

Options:
  -o, --output FORMAT      table (default), json or yaml
  --agent URL              the local agent's status endpoint (default ${DEFAULT_AGENT_URL}, env PODNETCTL_AGENT)
  --kubeconfig PATH        for ipam, policy, cluster and trace (default KUBECONFIG, then in-cluster)
  --netns NAME             routes, trace: read the kernel of this network namespace
  -h, --help               this text`;

export interface CtlIo {
  env: Record<string, string | undefined>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** Runs podnetctl with `argv`; returns the exit code. Never throws. */
export async function runCtl(argv: string[], io: CtlIo): Promise<number> {
  try {
    const { values, positionals } = (() => {
      try {
        return parseArgs({
          args: argv,
          allowPositionals: true,
          options: {
            output: { type: 'string', short: 'o', default: 'table' },
            agent: { type: 'string' },
            kubeconfig: { type: 'string' },
            ip: { type: 'string' },
            netns: { type: 'string' },
            port: { type: 'string' },
            protocol: { type: 'string' },
            help: { type: 'boolean', short: 'h' },
          },
        });
      } catch (err) {
        throw new CtlError('CTL_ERR_USAGE', `${(err as Error).message}\n\n${USAGE}`);
      }
    })();
    if (values.help || positionals.length === 0) {
      io.stdout(`${USAGE}\n`);
      return values.help ? 0 : 2;
    }
    const output = values.output as OutputFormat;
    if (!OUTPUT_FORMATS.includes(output))
      throw new CtlError(
        'CTL_ERR_USAGE',
        `--output ${JSON.stringify(values.output)}: use table, json or yaml`,
      );
    const agentUrl = values.agent ?? io.env.PODNETCTL_AGENT ?? DEFAULT_AGENT_URL;
    const kubeconfigPath = values.kubeconfig ?? io.env.KUBECONFIG;
    const ipam = () => {
      try {
        const client = new KubeClient(kubeconfigPath ? { kubeconfigPath } : {});
        return { client, ipam: new Ipam({ client }) };
      } catch (err) {
        throw new CtlError(
          'CTL_ERR_API',
          `${(err as Error).message}\nPass --kubeconfig PATH or set KUBECONFIG.`,
        );
      }
    };
    const apiError = (err: unknown) =>
      err instanceof CtlError
        ? err
        : new CtlError(
            'CTL_ERR_API',
            `${(err as Error).message}\nCheck that the API server is reachable with this kubeconfig (kubectl get ippools).`,
          );

    const cmd =
      (positionals[0] === 'policy' && positionals.length === 2) ||
      (positionals[0] === 'trace' && positionals.length === 3) ||
      (positionals[0] === 'completion' && positionals.length === 2)
        ? positionals[0]
        : positionals.join(' ');
    let result: CommandResult;
    switch (cmd) {
      case 'completion':
        io.stdout(`${completion(positionals[1])}\n`);
        return 0;
      case 'cluster status': {
        const { client } = ipam();
        const [nodes, statuses] = await Promise.all([
          client.listNodes(),
          client.resource(NODESTATUS).list(),
        ]).catch((e) => Promise.reject(apiError(e)));
        result = clusterStatus(
          nodes.map((n) => n.metadata?.name ?? '').filter(Boolean),
          statuses.items as NodeStatus[],
        );
        break;
      }
      case 'trace': {
        const query = parsePolicyQuery(values.port, values.protocol);
        const { client } = ipam();
        const pod = async (ref: string): Promise<TracePod> => {
          const [ns, name] = ref.split('/');
          if (!ns || !name)
            throw new CtlError('CTL_ERR_USAGE', `${JSON.stringify(ref)}: give a pod as NAMESPACE/NAME`);
          const p = await client.findPod(ns, name).catch((e) => Promise.reject(apiError(e)));
          if (!p) throw new CtlError('CTL_ERR_NOT_FOUND', `pod ${ns}/${name} not found`);
          const v = podView(p as Parameters<typeof podView>[0]);
          return {
            namespace: ns,
            name,
            ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}),
            ips: (v?.ips ?? []).map((ip) => ip.split('/')[0]!),
            iface: podInterfaceName(ns, name),
          };
        };
        const src = await pod(positionals[1]!);
        const to = positionals[2]!;
        const dst: TraceTarget = parseIp(to) ? { kind: 'ip', ip: to } : { kind: 'pod', ...(await pod(to)) };
        const [blocks, statuses] = await Promise.all([
          client.resource(IPAMBLOCK).list(),
          client.resource(NODESTATUS).list(),
        ]).catch((e) => Promise.reject(apiError(e)));
        // NetworkPolicies, pods and namespaces for the verdicts; when they cannot be read the
        // policy hops say why (the rest of the trace still stands).
        const cluster = await readPolicyCluster(client).catch((err: Error) => err);
        const policy: PolicyHook =
          cluster instanceof Error
            ? () => ({
                status: 'not-checked',
                detail: `NetworkPolicies not read: ${cluster.message.split('\n')[0]}`,
              })
            : policyHook(cluster, query);
        // On a node: its agent says which node this is; the kernel is read here (or in --netns).
        const agent = await fetchAgentStatus(agentUrl, 2000).catch(() => undefined);
        let local: LocalNode | undefined;
        if (agent) {
          local = { node: agent.node.name, agent };
          try {
            local.kernel = await readKernel(values.netns ? { netns: values.netns } : {});
          } catch (err) {
            local.kernelError = (err as Error).message;
          }
        }
        result = traceResult({
          src,
          dst,
          blocks: blocks.items.map((b) => ({
            cidr: b.spec.cidr,
            ...(b.spec.affinity?.startsWith('host:') ? { node: b.spec.affinity.slice(5) } : {}),
          })),
          nodeStatuses: statuses.items as NodeStatus[],
          ...(local ? { local } : {}),
          policy,
          policyQuery: queryText(query),
        });
        break;
      }
      case 'policy': {
        const { client } = ipam();
        result = policyExplain(
          positionals[1]!,
          await readPolicyCluster(client).catch((e) => Promise.reject(apiError(e))),
        );
        break;
      }
      case 'node status':
        result = nodeStatus(await fetchAgentStatus(agentUrl));
        break;
      case 'routes': {
        const notes: string[] = [];
        const st = await fetchAgentStatus(agentUrl).catch((err: Error) => {
          notes.push(`no sources: ${err.message.split('\n')[0]}`);
          return undefined;
        });
        // The agent's route protocol (its --route-protocol, in /status); without the agent the
        // same variable the agent reads (PODNET_ROUTE_PROTOCOL), else podnet's default.
        let protocol = st?.routeProtocol?.number;
        if (protocol === undefined) {
          const env = io.env.PODNET_ROUTE_PROTOCOL;
          if (env !== undefined && !(/^\d+$/.test(env) && Number(env) >= 1 && Number(env) <= 255))
            throw new CtlError(
              'CTL_ERR_USAGE',
              `PODNET_ROUTE_PROTOCOL ${JSON.stringify(env)}: use a route protocol number from 1 to 255`,
            );
          protocol = env === undefined ? PODNET_ROUTE_PROTOCOL : Number(env);
          notes.push(
            `kernel read for protocol ${protocol} (${env === undefined ? "podnet's default; PODNET_ROUTE_PROTOCOL sets another" : 'PODNET_ROUTE_PROTOCOL'}): the agent did not say which it uses`,
          );
        }
        const kernel = await dumpPodnetRoutes({
          ...(values.netns ? { netns: values.netns } : {}),
          protocol,
        }).catch((err: Error) => {
          notes.push(`kernel not read: ${err.message}`);
          return undefined;
        });
        if (!st && !kernel)
          throw new CtlError(
            'CTL_ERR_AGENT',
            `neither the agent nor the kernel could be read:\n  ${notes.join('\n  ')}`,
          );
        result = routes(st, kernel, notes, protocol);
        break;
      }
      case 'ipam show': {
        const { ipam: i } = ipam();
        result = ipamShow(await i.usage().catch((e) => Promise.reject(apiError(e))));
        break;
      }
      case 'ipam check': {
        const { ipam: i, client } = ipam();
        try {
          const found = [
            ...(await i.check()),
            ...(await findLeaks(i, async (ns, name) => (await client.findPod(ns, name)) !== undefined)),
          ];
          result = ipamCheck(found);
        } catch (err) {
          throw apiError(err);
        }
        break;
      }
      case 'ipam release': {
        if (!values.ip)
          throw new CtlError(
            'CTL_ERR_USAGE',
            'ipam release needs --ip ADDRESS, e.g. podnetctl ipam release --ip 10.244.1.7',
          );
        const { ipam: i } = ipam();
        let released: Awaited<ReturnType<Ipam['releaseIp']>>;
        try {
          released = await i.releaseIp(values.ip);
        } catch (err) {
          if ((err as { code?: string }).code === 'IPAM_ERR_INVALID_ARGUMENT')
            throw new CtlError(
              'CTL_ERR_USAGE',
              `--ip ${JSON.stringify(values.ip)}: ${(err as Error).message}`,
            );
          throw apiError(err);
        }
        result = ipamRelease(values.ip, released);
        break;
      }
      default:
        throw new CtlError('CTL_ERR_USAGE', `unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
    }
    io.stdout(`${render(output, result.data, result.table)}\n`);
    return result.exitCode ?? 0;
  } catch (err) {
    if (err instanceof CtlError) {
      io.stderr(`podnetctl: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`podnetctl: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
