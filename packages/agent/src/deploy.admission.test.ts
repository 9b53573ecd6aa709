// deploy/admission/node-scoped-writes.yaml, evaluated as kube-apiserver evaluates a
// ValidatingAdmissionPolicy (match rules, then matchConditions, then variables, then each
// validation; a false validation denies with its message), with a CEL evaluator (@bufbuild/cel).
// It has not run on a real 1.30+ API server here: this checks the policy's logic, request by request.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@bufbuild/cel';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../../deploy/admission/node-scoped-writes.yaml',
);
const [policy, binding] = parseAllDocuments(readFileSync(FILE, 'utf8')).map((d) => d.toJS()) as [
  {
    spec: {
      matchConstraints: {
        resourceRules: { apiGroups: string[]; operations: string[]; resources: string[] }[];
      };
      matchConditions: { name: string; expression: string }[];
      variables: { name: string; expression: string }[];
      validations: { expression: string; message?: string; messageExpression?: string }[];
    };
    metadata: { name: string };
  },
  { spec: { policyName: string; validationActions: string[] } },
];

type Obj = Record<string, unknown>;
interface Req {
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  group: string;
  resource: string;
  user: string;
  node?: string;
  object?: Obj;
  oldObject?: Obj;
}

function cel(expr: string, vars: Record<string, unknown>): unknown {
  const r = run(expr, vars as never);
  if (r instanceof Error) throw new Error(`${expr}: ${r.message}`);
  return r;
}

/** 'allowed', 'not matched' or the denial message. */
function admit(q: Req): string {
  const rule = policy.spec.matchConstraints.resourceRules.find(
    (r) =>
      r.apiGroups.includes(q.group) && r.resources.includes(q.resource) && r.operations.includes(q.operation),
  );
  if (!rule) return 'not matched';
  const request = {
    operation: q.operation,
    resource: { group: q.group, resource: q.resource },
    userInfo: {
      username: q.user,
      extra: q.node ? { 'authentication.kubernetes.io/node-name': [q.node] } : {},
    },
  };
  const base: Record<string, unknown> = {
    request,
    object: q.operation === 'DELETE' ? null : q.object,
    oldObject: q.operation === 'CREATE' ? null : (q.oldObject ?? null),
  };
  for (const c of policy.spec.matchConditions) if (cel(c.expression, base) !== true) return 'not matched';
  const variables: Record<string, unknown> = {};
  for (const v of policy.spec.variables) variables[v.name] = cel(v.expression, { ...base, variables });
  for (const v of policy.spec.validations) {
    const env = { ...base, variables };
    if (cel(v.expression, env) !== true)
      return v.messageExpression ? String(cel(v.messageExpression, env)) : String(v.message);
  }
  return 'allowed';
}

const AGENT = 'system:serviceaccount:podnet-system:podnet-agent';
const CNI = 'system:serviceaccount:podnet-system:podnet-cni';
const node = (name: string) => ({ metadata: { name } });
const pod = (name: string, nodeName: string) => ({ metadata: { name }, spec: { nodeName } });
const aff = (name: string, n: string, deleted?: boolean) => ({
  metadata: { name },
  spec: { node: n, cidr: '10.244.0.0/26', state: 'confirmed', ...(deleted === undefined ? {} : { deleted }) },
});

describe('deploy/admission: node-scoped writes', () => {
  it('is bound with Deny', () => {
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
  });

  it('lets an agent update only its own Node', () => {
    const q = { operation: 'UPDATE', group: '', resource: 'nodes', user: AGENT, node: 'n1' } as const;
    expect(admit({ ...q, object: node('n1'), oldObject: node('n1') })).toBe('allowed');
    expect(admit({ ...q, object: node('n2'), oldObject: node('n2') })).toBe(
      'podnet on node n1 may only update its own Node, not UPDATE Node n2',
    );
    expect(admit({ ...q, operation: 'DELETE', oldObject: node('n1') })).toMatch(
      /may only update its own Node/,
    );
  });

  it('lets the agent and the CNI token update only pods on their node', () => {
    for (const user of [AGENT, CNI]) {
      const q = { operation: 'UPDATE', group: '', resource: 'pods', user, node: 'n1' } as const;
      expect(admit({ ...q, object: pod('a', 'n1'), oldObject: pod('a', 'n1') })).toBe('allowed');
      expect(admit({ ...q, object: pod('b', 'n2'), oldObject: pod('b', 'n2') })).toBe(
        'podnet on node n1 may only update pods on its node, not UPDATE pod b',
      );
      expect(admit({ ...q, object: { metadata: { name: 'c' }, spec: {} } })).toMatch(/pods on its node/);
    }
  });

  it("keeps BlockAffinities to the caller's node, except marking another node's deleted or deleting it", () => {
    const q = { group: 'podnet.io', resource: 'blockaffinities', user: CNI, node: 'n1' } as const;
    expect(admit({ ...q, operation: 'CREATE', object: aff('n1-a', 'n1') })).toBe('allowed');
    expect(admit({ ...q, operation: 'CREATE', object: aff('n2-a', 'n2') })).toBe(
      'podnet on node n1 may only CREATE BlockAffinities of its own node, not n2-a (node n2)',
    );
    expect(
      admit({ ...q, operation: 'UPDATE', object: aff('n2-a', 'n2', true), oldObject: aff('n2-a', 'n2') }),
    ).toBe('allowed');
    expect(
      admit({ ...q, operation: 'UPDATE', object: aff('n2-a', 'n2', false), oldObject: aff('n2-a', 'n2') }),
    ).toMatch(/may only UPDATE BlockAffinities of its own node/);
    expect(
      admit({ ...q, operation: 'UPDATE', object: aff('n2-a', 'n1', true), oldObject: aff('n2-a', 'n2') }),
    ).toMatch(/may only UPDATE/);
    expect(admit({ ...q, operation: 'DELETE', oldObject: aff('n2-a', 'n2') })).toBe('allowed');
    expect(
      admit({ ...q, operation: 'UPDATE', object: aff('n1-a', 'n1', true), oldObject: aff('n1-a', 'n1') }),
    ).toBe('allowed');
    expect(
      admit({ ...q, operation: 'UPDATE', object: aff('n1-a', 'n2'), oldObject: aff('n1-a', 'n1') }),
    ).toMatch(/may only UPDATE/);
  });

  it('lets an agent create, update and delete only the NodeStatus named after its node', () => {
    const q = { group: 'podnet.io', resource: 'nodestatuses', user: AGENT, node: 'n1' } as const;
    expect(admit({ ...q, operation: 'CREATE', object: node('n1') })).toBe('allowed');
    expect(admit({ ...q, operation: 'UPDATE', object: node('n1'), oldObject: node('n1') })).toBe('allowed');
    expect(admit({ ...q, operation: 'CREATE', object: node('n2') })).toBe(
      'podnet on node n1 may only write its own NodeStatus, not n2',
    );
    expect(admit({ ...q, operation: 'UPDATE', object: node('n2'), oldObject: node('n2') })).toMatch(
      /only write its own NodeStatus/,
    );
    expect(admit({ ...q, operation: 'DELETE', oldObject: node('n2') })).toMatch(
      /only write its own NodeStatus/,
    );
    expect(admit({ ...q, node: undefined, operation: 'CREATE', object: node('n1') })).toMatch(
      /token bound to a pod on a node/,
    );
  });

  it('lets the agent create IPPools and BGPConfigurations only under the default names', () => {
    const q = { operation: 'CREATE', group: 'podnet.io', user: AGENT, node: 'n1' } as const;
    for (const name of ['default-ipv4', 'default-ipv6'])
      expect(admit({ ...q, resource: 'ippools', object: node(name) })).toBe('allowed');
    expect(admit({ ...q, resource: 'bgpconfigurations', object: node('default') })).toBe('allowed');
    expect(admit({ ...q, resource: 'ippools', object: node('wide-open') })).toMatch(
      /may only create the default IPPools .* not ippools wide-open$/,
    );
    expect(admit({ ...q, resource: 'bgpconfigurations', object: node('node.n2') })).toMatch(
      /not bgpconfigurations node\.n2$/,
    );
    expect(admit({ ...q, user: 'system:admin', resource: 'ippools', object: node('mine') })).toBe(
      'not matched',
    );
  });

  it('refuses podnet tokens that carry no node, and leaves every other user alone', () => {
    const q = {
      operation: 'UPDATE',
      group: '',
      resource: 'nodes',
      object: node('n1'),
      oldObject: node('n1'),
    } as const;
    expect(admit({ ...q, user: AGENT })).toMatch(/must use a token bound to a pod on a node/);
    expect(admit({ ...q, user: 'system:serviceaccount:kube-system:node-controller' })).toBe('not matched');
    expect(admit({ ...q, user: AGENT, node: 'n1', resource: 'configmaps' })).toBe('not matched');
  });
});
