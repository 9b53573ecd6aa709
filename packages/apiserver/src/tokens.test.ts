// TokenRequest, service account token authentication and the OpenAPI document kubectl fetches,
// through @kubernetes/client-node and plain HTTP to the running server.
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from './index.js';
import { openApiV2Protobuf } from './openapi.js';

let server: ApiServer;
let core: CoreV1Api;
let podUid: string;

function coreAs(token: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: server.url, skipTLSVerify: true }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc.makeApiClient(CoreV1Api);
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString());

beforeAll(async () => {
  server = await startApiServer({ tls: false });
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'sys' } } });
  await core.createNamespacedServiceAccount({ namespace: 'sys', body: { metadata: { name: 'cni' } } });
  await core.createNode({ body: { metadata: { name: 'n1' } } });
  const pod = await core.createNamespacedPod({
    namespace: 'sys',
    body: { metadata: { name: 'agent' }, spec: { nodeName: 'n1', containers: [{ name: 'a', image: 'i' }] } },
  });
  podUid = pod.metadata!.uid!;
});
afterAll(() => server?.close());

const request = (spec: object, name = 'cni') =>
  core.createNamespacedServiceAccountToken({
    name,
    namespace: 'sys',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec } as never,
  });

describe('TokenRequest', () => {
  it('issues a JWT with the audiences, expiry and bound pod (and its node) asked for', async () => {
    const tr = await request({
      audiences: ['aud-1'],
      expirationSeconds: 1200,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'agent', uid: podUid },
    });
    const c = claims(tr.status!.token!);
    expect(c.aud).toEqual(['aud-1']);
    expect(c.exp - c.iat).toBe(1200);
    expect(new Date(tr.status!.expirationTimestamp!).getTime()).toBe(c.exp * 1000);
    expect(c.sub).toBe('system:serviceaccount:sys:cni');
    expect(c['kubernetes.io'].pod).toEqual({ name: 'agent', uid: podUid });
    expect(c['kubernetes.io'].node.name).toBe('n1');
    expect(tr.spec?.audiences).toEqual(['aud-1']);
  });

  it('defaults to the server audience and one hour', async () => {
    const c = claims((await request({})).status!.token!);
    expect(c.aud).toEqual(['https://kubernetes.default.svc.cluster.local']);
    expect(c.exp - c.iat).toBe(3600);
  });

  it('refuses what kube-apiserver refuses', async () => {
    expect(await code(request({ expirationSeconds: 60 }))).toBe(422);
    expect(await code(request({ boundObjectRef: { apiVersion: 'v1', kind: 'Deployment', name: 'x' } }))).toBe(
      422,
    );
    expect(await code(request({ boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'nope' } }))).toBe(
      404,
    );
    expect(
      await code(request({ boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'agent', uid: 'other' } })),
    ).toBe(409);
    expect(await code(request({}, 'no-such-sa'))).toBe(404);
  });

  it('authenticates a token only while it carries the API audience and its pod lives', async () => {
    const bound = { apiVersion: 'v1', kind: 'Pod', name: 'agent', uid: podUid };
    const good = (await request({ boundObjectRef: bound })).status!.token!;
    const otherAudience = (await request({ audiences: ['elsewhere'], boundObjectRef: bound })).status!.token!;
    expect(await code(coreAs(good).readNamespace({ name: 'sys' }))).toBe(200);
    expect(await code(coreAs(otherAudience).readNamespace({ name: 'sys' }))).toBe(401);
    expect(await code(coreAs(`${good.slice(0, -4)}AAAA`).readNamespace({ name: 'sys' }))).toBe(401);
    await core.deleteNamespacedPod({ name: 'agent', namespace: 'sys' });
    expect(await code(coreAs(good).readNamespace({ name: 'sys' }))).toBe(401);
  });

  it('lists serviceaccounts/token in discovery', async () => {
    const r = await fetch(`${server.url}/api/v1`, { headers: { authorization: `Bearer ${server.token}` } });
    const list = (await r.json()) as { resources: { name: string; kind: string; verbs: string[] }[] };
    expect(list.resources).toContainEqual(
      expect.objectContaining({ name: 'serviceaccounts/token', kind: 'TokenRequest', verbs: ['create'] }),
    );
  });
});

describe('/openapi/v2', () => {
  it('answers JSON, or the protobuf kubectl asks for', async () => {
    const auth = { authorization: `Bearer ${server.token}` };
    const json = await fetch(`${server.url}/openapi/v2`, { headers: auth });
    expect(await json.json()).toMatchObject({ swagger: '2.0', paths: {} });
    const pb = await fetch(`${server.url}/openapi/v2`, {
      headers: { ...auth, accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' },
    });
    expect(pb.headers.get('content-type')).toBe('application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    const bytes = Buffer.from(await pb.arrayBuffer());
    // field 1 (swagger) = "2.0", then field 2 (info), then field 8 (paths, empty)
    expect(bytes.subarray(0, 5)).toEqual(Buffer.from([0x0a, 0x03, 0x32, 0x2e, 0x30]));
    expect(bytes.subarray(-2)).toEqual(Buffer.from([0x42, 0x00]));
    expect(openApiV2Protobuf('t', 'v')).toEqual(
      Buffer.from([0x0a, 0x03, 0x32, 0x2e, 0x30, 0x12, 0x06, 0x0a, 0x01, 0x74, 0x12, 0x01, 0x76, 0x42, 0x00]),
    );
  });
});
