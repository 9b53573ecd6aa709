// The kubeconfig clients use to reach the server. Written by hand: a fixed shape, plain scalars.

export interface KubeconfigInput {
  server: string;
  token: string;
  caPem?: string;
  name?: string;
  namespace?: string;
}

const q = (s: string) => JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar

export function kubeconfigYaml(k: KubeconfigInput): string {
  const name = k.name ?? 'podnet';
  const lines = [
    'apiVersion: v1',
    'kind: Config',
    'preferences: {}',
    'clusters:',
    `- name: ${q(name)}`,
    '  cluster:',
    `    server: ${q(k.server)}`,
  ];
  if (k.caPem) lines.push(`    certificate-authority-data: ${Buffer.from(k.caPem).toString('base64')}`);
  // client-node refuses plain http unless TLS verification is switched off explicitly
  else if (k.server.startsWith('http:')) lines.push('    insecure-skip-tls-verify: true');
  lines.push(
    'users:',
    `- name: ${q(`${name}-admin`)}`,
    '  user:',
    `    token: ${q(k.token)}`,
    'contexts:',
    `- name: ${q(name)}`,
    '  context:',
    `    cluster: ${q(name)}`,
    `    user: ${q(`${name}-admin`)}`,
    `    namespace: ${q(k.namespace ?? 'default')}`,
    `current-context: ${q(name)}`,
    '',
  );
  return lines.join('\n');
}
