// Validates deploy/: every manifest parses, built-in kinds pass the Kubernetes OpenAPI schemas
// (kubernetes-models), podnet resources pass their zod schemas, the kustomization lists what
// exists, and RBAC and the DaemonSet keep the promises deploy/ makes (least privilege, no
// privileged agent, probes on the status port, rolling update one node at a time).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BGPCONFIGURATION, BGPPEER, IPPOOL, LOADBALANCERPOOL, validate } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from './config.js';
import { parseSysctlConf } from './node-sysctls.js';

const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy');

interface Doc {
  file: string;
  obj: {
    apiVersion: string;
    kind: string;
    metadata?: { name?: string; namespace?: string };
    [k: string]: unknown;
  };
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    // deploy/observability holds Prometheus rules and a Grafana dashboard, not Kubernetes objects
    // (observability.test.ts checks them).
    if (statSync(p).isDirectory()) return f === 'observability' ? [] : yamlFiles(p);
    return /\.ya?ml$/.test(f) ? [p] : [];
  });
}

function docs(files: string[]): Doc[] {
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
      if (d.errors.length) throw new Error(`${relative(DEPLOY, file)}: ${d.errors[0]!.message}`);
      const obj = d.toJS();
      return obj ? [{ file: relative(DEPLOY, file), obj }] : [];
    }),
  );
}

const all = docs(yamlFiles(DEPLOY));
const manifests = all.filter((d) => d.obj.kind !== 'Kustomization');
const podnetSchemas: Record<string, Parameters<typeof validate>[0]> = {
  IPPool: IPPOOL,
  BGPPeer: BGPPEER,
  BGPConfiguration: BGPCONFIGURATION,
  LoadBalancerPool: LOADBALANCERPOOL,
};

async function validateBuiltin(d: Doc): Promise<void> {
  const [group, version] = d.obj.apiVersion.includes('/')
    ? d.obj.apiVersion.split('/')
    : ['', d.obj.apiVersion];
  const path = group ? `${group}/${version}` : version;
  // A plain string (not a template in the import) so the bundler does not try to resolve it statically.
  const specifier: string = ['kubernetes-models', path, d.obj.kind].join('/');
  const mod = (await import(specifier)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[d.obj.kind];
  if (!Model) throw new Error(`${d.file}: no Kubernetes schema for ${d.obj.apiVersion} ${d.obj.kind}`);
  new Model(d.obj).validate();
}

const of = (kind: string) => manifests.filter((d) => d.obj.kind === kind);

describe('deploy/ manifests', () => {
  it('parses every YAML file and finds the kinds the base needs', () => {
    const kinds = new Set(manifests.map((d) => d.obj.kind));
    for (const k of [
      'CustomResourceDefinition',
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'ConfigMap',
      'DaemonSet',
      'IPPool',
      'BGPConfiguration',
      'BGPPeer',
    ])
      expect(kinds, `a ${k} somewhere in deploy/`).toContain(k);
  });

  it.each(
    manifests
      .filter((d) => !d.obj.apiVersion.startsWith('podnet.io/'))
      .map((d) => [`${d.file} ${d.obj.kind}/${d.obj.metadata?.name}`, d]),
  )('%s passes the Kubernetes schema', async (_name, d) => {
    await validateBuiltin(d as Doc);
  });

  it.each(
    manifests
      .filter((d) => d.obj.apiVersion.startsWith('podnet.io/'))
      .map((d) => [`${d.file} ${d.obj.kind}/${d.obj.metadata?.name}`, d]),
  )('%s passes the podnet schema', (_name, d) => {
    const doc = d as Doc;
    const schema = podnetSchemas[doc.obj.kind];
    expect(schema, `a schema for ${doc.obj.kind}`).toBeDefined();
    validate(schema!, doc.obj);
  });

  it('catches a broken manifest (the schema check can fail)', async () => {
    const ds = of('DaemonSet')[0]!;
    const broken = structuredClone(ds);
    (broken.obj.spec as { template: { spec: { containers: unknown } } }).template.spec.containers = 'agent';
    await expect(validateBuiltin(broken)).rejects.toThrow();
  });

  it('the kustomization lists every top-level manifest and every CRD, and no custom resource', () => {
    const k = all.find((d) => d.file === 'kustomization.yaml')!.obj as unknown as { resources: string[] };
    for (const r of k.resources) expect(statSync(join(DEPLOY, r)).isFile(), `${r} is a file`).toBe(true);
    // kubectl 1.20's kustomize (v2.0.3) refuses `labels` and directories in `resources`.
    expect(Object.keys(k).sort()).toEqual(['apiVersion', 'kind', 'namespace', 'resources']);
    const crds = readdirSync(join(DEPLOY, 'crds')).filter((f) => /\.ya?ml$/.test(f));
    expect(
      crds,
      'no kustomization in crds/: `kubectl apply -f deploy/crds/` reads every YAML there',
    ).not.toContain('kustomization.yaml');
    for (const f of crds)
      expect(k.resources, `crds/${f} is listed in deploy/kustomization.yaml`).toContain(`crds/${f}`);
    // Custom resources cannot be in the same apply as their CRDs (deploy.kubectl.test.ts shows it):
    // the agent creates the default IPPool and BGPConfiguration (defaults.ts).
    const top = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    expect(k.resources.filter((r) => !r.includes('/')).sort()).toEqual(top.sort());
    for (const r of k.resources)
      for (const d of all.filter((x) => x.file === r))
        expect(d.obj.apiVersion, `${r}: no custom resource in the one-pass base`).not.toMatch(
          /^podnet\.io\//,
        );
    const admission = all.find((d) => d.file === 'admission/kustomization.yaml')!.obj as unknown as {
      resources: string[];
    };
    expect(admission.resources).toEqual(['node-scoped-writes.yaml']);
  });

  it('grants no wildcard, no cluster-admin, and Secrets only by name (get, list, watch)', () => {
    const roles = [...of('ClusterRole'), ...of('Role')];
    expect(roles.length).toBeGreaterThan(0);
    for (const r of roles) {
      const rules = (
        r.obj as unknown as {
          rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
        }
      ).rules;
      for (const rule of rules) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs])
          expect(field, `${r.obj.metadata?.name}: no wildcard`).not.toContain('*');
        if (rule.resources.includes('secrets')) {
          expect(r.obj.kind, 'secrets only through a namespaced Role').toBe('Role');
          // get, and list/watch for the by-name watch (fieldSelector metadata.name) of BGP passwords.
          expect(rule.verbs).toEqual(['get', 'list', 'watch']);
          expect(rule.resourceNames?.length, 'secrets only by resourceNames').toBeGreaterThan(0);
        }
      }
    }
    for (const b of [...of('ClusterRoleBinding'), ...of('RoleBinding')]) {
      const ref = (b.obj as unknown as { roleRef: { name: string } }).roleRef.name;
      expect(['cluster-admin', 'admin', 'edit']).not.toContain(ref);
      expect(roles.map((r) => r.obj.metadata?.name)).toContain(ref);
    }
  });

  it('lets the agent list and watch pods, namespaces and NetworkPolicies cluster-wide (NetworkPolicy enforcement)', () => {
    const role = of('ClusterRole').find((r) => r.obj.metadata?.name === 'podnet-agent')!.obj as unknown as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    };
    const can = (group: string, resource: string, verb: string) =>
      role.rules.some(
        (r) =>
          r.apiGroups.includes(group) &&
          r.resources.includes(resource) &&
          r.verbs.includes(verb) &&
          !r.resourceNames,
      );
    for (const [group, resource] of [
      ['', 'pods'],
      ['', 'namespaces'],
      ['networking.k8s.io', 'networkpolicies'],
    ] as const)
      for (const verb of ['list', 'watch'])
        expect(can(group, resource, verb), `${verb} ${group || 'core'}/${resource} cluster-wide`).toBe(true);
    expect(can('', 'events', 'create'), 'Events on NetworkPolicies in their namespaces').toBe(true);
    expect(can('networking.k8s.io', 'networkpolicies', 'create'), 'policies are only read').toBe(false);
  });

  it('runs the agent on the host network with capabilities, not privileged, probed on the status port, scraped on the metrics port', () => {
    const ds = of('DaemonSet')[0]!.obj as unknown as {
      spec: {
        updateStrategy: { type: string; rollingUpdate: { maxUnavailable: number } };
        template: {
          spec: {
            hostNetwork: boolean;
            tolerations: unknown[];
            initContainers: { name: string; command: string[] }[];
            containers: {
              name: string;
              securityContext: { privileged: boolean; capabilities: { add: string[]; drop: string[] } };
              livenessProbe: { httpGet: { path: string; port: number } };
              readinessProbe: { httpGet: { path: string; port: number } };
              resources: { requests: Record<string, string> };
            }[];
          };
        };
      };
    };
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations.length).toBeGreaterThan(0);
    expect(pod.initContainers.map((c) => c.command.at(-1))).toContain('install-cni');
    const agent = pod.containers.find((c) => c.name === 'agent')!;
    expect(agent.securityContext.privileged).toBe(false);
    expect(agent.securityContext.capabilities.add.sort()).toEqual([
      'NET_ADMIN',
      'NET_BIND_SERVICE',
      'NET_RAW',
    ]);
    expect(agent.securityContext.capabilities.drop).toEqual(['ALL']);
    expect(agent.livenessProbe.httpGet).toMatchObject({ path: '/livez', port: 9099 });
    expect(agent.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 9099 });
    expect(Object.keys(agent.resources.requests).sort()).toEqual(['cpu', 'memory']);
    const full = of('DaemonSet')[0]!.obj as unknown as {
      spec: {
        template: {
          metadata: { annotations: Record<string, string> };
          spec: {
            initContainers: Container[];
            containers: Container[];
            volumes: { name: string; hostPath?: { path: string } }[];
          };
        };
      };
    };
    interface Container {
      name: string;
      securityContext: { privileged?: boolean };
      ports?: { name: string; containerPort: number; hostPort?: number }[];
      env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
      volumeMounts?: { name: string }[];
    }
    const t = full.spec.template;
    expect(t.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9091',
      'prometheus.io/path': '/metrics',
    });
    const a = t.spec.containers.find((c) => c.name === 'agent')!;
    expect(a.ports).toContainEqual({ name: 'metrics', containerPort: 9091, hostPort: 9091, protocol: 'TCP' });
    // Only the one-shot sysctl writer is privileged; the reason is written beside it.
    const privileged = [...t.spec.initContainers, ...t.spec.containers].filter(
      (c) => c.securityContext.privileged,
    );
    expect(privileged.map((c) => c.name)).toEqual(['node-sysctls']);
    expect(readFileSync(join(DEPLOY, 'daemonset.yaml'), 'utf8')).toMatch(
      /Privileged because containerd and CRI-O mount \/proc\/sys read-only/,
    );
    // Every host path is mounted by some container (no /lib/modules nothing reads).
    const mounted = new Set(
      [...t.spec.initContainers, ...t.spec.containers].flatMap((c) =>
        (c.volumeMounts ?? []).map((m) => m.name),
      ),
    );
    for (const v of t.spec.volumes) expect(mounted, `volume ${v.name} is mounted`).toContain(v.name);
    expect(t.spec.volumes.map((v) => v.hostPath?.path)).not.toContain('/lib/modules');
    // The agent serves the CNI socket as shipped, unprivileged: no hostPID and no /var/run/netns
    // mount (the shim hands over the pod's namespace as descriptors); the socket's directory and
    // the plugin's cache are the host's.
    const agentEnv = Object.fromEntries((a.env ?? []).map((e) => [e.name, e.value]));
    expect(agentEnv).toMatchObject({
      PODNET_CNI_SOCKET: '/var/run/podnet/cni.sock',
      PODNET_CNI_HOST_CONF_DIR: '/etc/cni/net.d',
    });
    expect((t.spec as { hostPID?: boolean }).hostPID).toBeUndefined();
    const hostPathOf = (name: string) => t.spec.volumes.find((v) => v.name === name)?.hostPath?.path;
    const agentMounts = Object.fromEntries(
      ((a.volumeMounts ?? []) as { name: string; mountPath?: string }[]).map((m) => [
        m.mountPath,
        hostPathOf(m.name),
      ]),
    );
    expect(agentMounts).toMatchObject({
      '/var/run/podnet': '/var/run/podnet',
      '/var/lib/cni/podnet': '/var/lib/cni/podnet',
    });
    expect(t.spec.volumes.map((v) => v.hostPath?.path)).not.toContain('/var/run/netns');
    // The containers that request the CNI token know they run in the DaemonSet's pod (POD_NAME).
    for (const name of ['install-cni', 'agent']) {
      const c = [...t.spec.initContainers, ...t.spec.containers].find((x) => x.name === name)!;
      const env = Object.fromEntries(
        (c.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]),
      );
      expect(env, name).toMatchObject({ POD_NAME: 'metadata.name' });
    }
  });

  it('ships no long-lived token: no service-account-token Secret, and the agent may request only the CNI token', () => {
    for (const d of of('Secret'))
      expect((d.obj as { type?: string }).type, `${d.file} ${d.obj.metadata?.name}`).not.toBe(
        'kubernetes.io/service-account-token',
      );
    const role = of('Role').find((d) => d.obj.metadata?.name === 'podnet-agent-cni-token')!
      .obj as unknown as {
      rules: unknown[];
    };
    expect(role.rules).toEqual([
      {
        apiGroups: [''],
        resources: ['serviceaccounts/token'],
        resourceNames: ['podnet-cni'],
        verbs: ['create'],
      },
    ]);
    const rbac = readFileSync(join(DEPLOY, 'rbac.yaml'), 'utf8');
    expect(rbac).toMatch(/What RBAC cannot express/);
    expect(rbac).toMatch(/deploy\/admission\//);
  });

  it('sets no IPPool natOutgoing anywhere in deploy/ (the flat model is the default; docs/network-models.md turns on the others)', () => {
    const pools = all.filter((d) => d.obj.kind === 'IPPool');
    expect(pools.length).toBeGreaterThan(0);
    for (const d of pools)
      expect({ file: d.file, natOutgoing: (d.obj.spec as Record<string, unknown>).natOutgoing }).toEqual({
        file: d.file,
        natOutgoing: undefined,
      });
  });

  it('gives the agent what inet podnet needs: NET_ADMIN, and nft and @podnet/nft in the image', () => {
    const ds = of('DaemonSet')[0]!.obj as unknown as {
      spec: {
        template: {
          spec: { containers: { name: string; securityContext: { capabilities: { add: string[] } } }[] };
        };
      };
    };
    const agent = ds.spec.template.spec.containers.find((c) => c.name === 'agent')!;
    expect(agent.securityContext.capabilities.add).toContain('NET_ADMIN');
    const dockerfile = readFileSync(join(DEPLOY, 'docker/Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.indexOf('AS agent'));
    expect(runtime).toMatch(/apt-get install [^\n]*\bnftables\b/);
    // Every workspace package the agent and podnetctl (both in the image) import is copied into
    // the runtime stage.
    const depsOf = (pkg: string) =>
      Object.keys(
        (
          JSON.parse(readFileSync(join(DEPLOY, `../packages/${pkg}/package.json`), 'utf8')) as {
            dependencies: Record<string, string>;
          }
        ).dependencies,
      ).filter((d) => d.startsWith('@podnet/'));
    const deps = [...new Set([...depsOf('agent'), ...depsOf('ctl')])];
    expect(deps).toContain('@podnet/nft');
    expect(deps).toContain('@podnet/policy');
    for (const d of deps) expect(runtime).toContain(`/src/packages/${d.slice('@podnet/'.length)}/dist`);
  });

  it('ships a conflist in the ConfigMap that is valid JSON naming the podnet plugin', () => {
    const cm = of('ConfigMap').find((d) => d.obj.metadata?.name === 'podnet-config')!.obj as unknown as {
      data: Record<string, string>;
    };
    const conf = JSON.parse(cm.data['10-podnet.conflist']!) as { plugins: { type: string }[] };
    expect(conf.plugins[0]!.type).toBe('podnet');
    expect(cm.data['agent.yaml']).toMatch(/statusListen: 127\.0\.0\.1:9099/);
  });

  it('ships an agent.yaml that the agent itself accepts', () => {
    const cm = of('ConfigMap').find((d) => d.obj.metadata?.name === 'podnet-config')!.obj as unknown as {
      data: Record<string, string>;
    };
    const { config } = loadConfig({
      argv: ['--config', '/etc/podnet/agent.yaml'],
      env: { NODENAME: 'node-a' },
      readFile: () => cm.data['agent.yaml']!,
    });
    expect(config).toMatchObject({
      nodeName: 'node-a',
      statusListen: '127.0.0.1:9099',
      metricsListen: '0.0.0.0:9091',
      resyncInterval: 30_000,
    });
  });

  it('ships node-sysctls.conf that turns IPv4 forwarding on and nothing else', () => {
    const cm = of('ConfigMap').find((d) => d.obj.metadata?.name === 'podnet-config')!.obj as unknown as {
      data: Record<string, string>;
    };
    expect(parseSysctlConf(cm.data['node-sysctls.conf']!, 'node-sysctls.conf')).toEqual([
      { key: 'net/ipv4/ip_forward', value: '1' },
    ]);
  });
});
