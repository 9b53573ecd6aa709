// podnetctl's argument handling, separate from the process so tests call it directly.
import { parseArgs } from 'node:util';
import { Ipam } from '@podnet/ipam';
import { KubeClient } from '@podnet/k8s';
import { podFromObject } from '@podnet/policy';
import { DEFAULT_AGENT_URL, fetchAgentStatus } from './agent-status.js';
import {
  type CommandResult,
  findLeaks,
  ipamCheck,
  ipamRelease,
  ipamShow,
  nodeStatus,
  routes,
} from './commands.js';
import { CtlError } from './errors.js';
import { OUTPUT_FORMATS, type OutputFormat, render } from './format.js';
import { dumpPodnetRoutes } from './kernel.js';
import { policyExplain } from './policy.js';

export const USAGE = `usage: podnetctl [--output table|json|yaml] COMMAND

Commands:
  node status              BGP peers of the local agent: type, state, since, prefixes in/out
  routes [--netns NAME]    podnet's routes in the kernel (protocol 213) joined with their source
  ipam show                pools, blocks per node, utilisation
  ipam check               inconsistencies and leaked addresses (exit code 1 when any)
  ipam release --ip ADDR   free one address
  policy NAMESPACE/POD     NetworkPolicies selecting the pod, its effective ingress/egress allow list

Options:
  -o, --output FORMAT      table (default), json or yaml
  --agent URL              the local agent's status endpoint (default ${DEFAULT_AGENT_URL}, env PODNETCTL_AGENT)
  --kubeconfig PATH        for ipam and policy commands (default KUBECONFIG, then in-cluster)
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

    const cmd = positionals[0] === 'policy' && positionals.length === 2 ? 'policy' : positionals.join(' ');
    let result: CommandResult;
    switch (cmd) {
      case 'policy': {
        const { client } = ipam();
        const [policies, pods, namespaces] = await Promise.all([
          client.custom.listClusterCustomObject({
            group: 'networking.k8s.io',
            version: 'v1',
            plural: 'networkpolicies',
          }),
          client.listPods(),
          client.core.listNamespace(),
        ]).catch((e) => Promise.reject(apiError(e)));
        result = policyExplain(positionals[1]!, {
          policies: (policies as { items?: unknown[] }).items ?? [],
          pods: pods.map(podFromObject),
          namespaces: namespaces.items.map((n) => ({
            name: n.metadata?.name ?? '',
            labels: n.metadata?.labels ?? {},
          })),
        });
        break;
      }
      case 'node status':
        result = nodeStatus(await fetchAgentStatus(agentUrl));
        break;
      case 'routes': {
        const notes: string[] = [];
        const [st, kernel] = await Promise.all([
          fetchAgentStatus(agentUrl).catch((err: Error) => {
            notes.push(`no sources: ${err.message.split('\n')[0]}`);
            return undefined;
          }),
          dumpPodnetRoutes(values.netns ? { netns: values.netns } : {}).catch((err: Error) => {
            notes.push(`kernel not read: ${err.message}`);
            return undefined;
          }),
        ]);
        if (!st && !kernel)
          throw new CtlError(
            'CTL_ERR_AGENT',
            `neither the agent nor the kernel could be read:\n  ${notes.join('\n  ')}`,
          );
        result = routes(st, kernel, notes);
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
