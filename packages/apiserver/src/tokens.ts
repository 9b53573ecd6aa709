// Service account tokens as kube-apiserver issues them: the TokenRequest API
// (POST serviceaccounts/<name>/token) returns a signed JWT with the audiences, the expiry and the
// object it is bound to (a Pod or a Secret); the server authenticates such a token only while it
// is unexpired, carries one of the server's API audiences, and its service account and bound
// object still exist with the same uid. Signed with ES256 (kube-apiserver accepts RS256 and ES256).
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
  verify,
} from 'node:crypto';
import { causes, errors, type StatusCause } from './errors.js';
import type { KObject, Store } from './store.js';

/** The issuer and default API audience of a kubeadm cluster (`--service-account-issuer`). */
export const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** kube-apiserver's default `expirationSeconds`, and the shortest it accepts (10 minutes). */
export const DEFAULT_EXPIRATION_SECONDS = 3600;
export const MIN_EXPIRATION_SECONDS = 600;

/** Who a request comes from, as kube-apiserver's authenticators name it. */
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export const ADMIN_USER: UserInfo = {
  username: 'podnet-admin',
  groups: ['system:masters', 'system:authenticated'],
  extra: {},
};

interface Claims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
    secret?: { name: string; uid: string };
    node?: { name: string; uid: string };
  };
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url');
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export class TokenIssuer {
  private readonly key: KeyObject;
  private readonly pub: KeyObject;
  readonly keyId: string;

  constructor(
    private readonly store: Store,
    readonly issuer = DEFAULT_ISSUER,
    /** Audiences a token must carry one of to authenticate here (`--api-audiences`). */
    readonly apiAudiences: string[] = [DEFAULT_ISSUER],
    private readonly clock: () => number = Date.now,
  ) {
    const saved = store.extra.serviceAccountKey;
    if (typeof saved === 'string') this.key = createPrivateKey(saved);
    else {
      this.key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      store.extra.serviceAccountKey = this.key.export({ type: 'pkcs8', format: 'pem' }).toString();
      store.markDirty();
    }
    this.pub = createPublicKey(this.key);
    this.keyId = b64(this.pub.export({ type: 'spki', format: 'der' }).subarray(-16));
  }

  /** Handles POST .../serviceaccounts/<name>/token: the TokenRequest to send back (201). */
  request(namespace: string, name: string, body: unknown): KObject {
    const ref = { group: '', resource: 'serviceaccounts' };
    const sa = this.store.get('serviceaccounts', namespace, name);
    if (!sa) throw errors.notFound(ref, name);
    const spec = isObject(body) && isObject(body.spec) ? body.spec : {};
    const found: StatusCause[] = [];
    const expirationSeconds = spec.expirationSeconds ?? DEFAULT_EXPIRATION_SECONDS;
    if (typeof expirationSeconds !== 'number' || !Number.isInteger(expirationSeconds))
      found.push(causes.typeInvalid('spec.expirationSeconds', expirationSeconds, 'integer'));
    else if (expirationSeconds < MIN_EXPIRATION_SECONDS)
      found.push(
        causes.invalid(
          'spec.expirationSeconds',
          expirationSeconds,
          'may not specify a duration less than 10 minutes',
        ),
      );
    else if (expirationSeconds > 2 ** 32)
      found.push(
        causes.invalid(
          'spec.expirationSeconds',
          expirationSeconds,
          'may not specify a duration larger than 2^32 seconds',
        ),
      );
    const audiences =
      Array.isArray(spec.audiences) && spec.audiences.length > 0 ? spec.audiences : this.apiAudiences;
    if (!audiences.every((a) => typeof a === 'string' && a !== ''))
      found.push(causes.invalid('spec.audiences', audiences, 'must be a list of non-empty strings'));
    const bound = spec.boundObjectRef;
    const kclaims: Claims['kubernetes.io'] = {
      namespace,
      serviceaccount: { name, uid: String(sa.metadata.uid) },
    };
    if (bound !== undefined && bound !== null) {
      const b = isObject(bound) ? bound : {};
      const kind = b.kind;
      if (kind !== 'Pod' && kind !== 'Secret')
        found.push(causes.unsupported('spec.boundObjectRef.kind', kind, ['Pod', 'Secret']));
      else if (b.apiVersion !== 'v1')
        found.push(causes.unsupported('spec.boundObjectRef.apiVersion', b.apiVersion, ['v1']));
      else if (typeof b.name !== 'string' || b.name === '')
        found.push(causes.required('spec.boundObjectRef.name'));
      else {
        const plural = kind === 'Pod' ? 'pods' : 'secrets';
        const obj = this.store.get(plural, namespace, b.name);
        if (!obj) throw errors.notFound({ group: '', resource: plural }, b.name);
        if (b.uid !== undefined && b.uid !== '' && b.uid !== obj.metadata.uid)
          throw errors.conflict(
            ref,
            name,
            `the UID in the bound object reference (${String(b.uid)}) does not match the UID in record. The object might have been deleted and then recreated`,
          );
        const ident = { name: b.name, uid: String(obj.metadata.uid) };
        if (kind === 'Pod') {
          kclaims.pod = ident;
          const nodeName = (obj.spec as { nodeName?: string } | undefined)?.nodeName;
          const node = nodeName ? this.store.get('nodes', undefined, nodeName) : undefined;
          if (node) kclaims.node = { name: nodeName!, uid: String(node.metadata.uid) };
        } else kclaims.secret = ident;
      }
    }
    if (found.length) throw errors.invalid('TokenRequest', 'authentication.k8s.io', name, found);

    const iat = Math.floor(this.clock() / 1000);
    const exp = iat + (expirationSeconds as number);
    const claims: Claims = {
      iss: this.issuer,
      sub: `system:serviceaccount:${namespace}:${name}`,
      aud: audiences as string[],
      exp,
      iat,
      nbf: iat,
      jti: randomUUID(),
      'kubernetes.io': kclaims,
    };
    const head = b64(JSON.stringify({ alg: 'ES256', kid: this.keyId }));
    const body64 = b64(JSON.stringify(claims));
    const sig = sign('sha256', Buffer.from(`${head}.${body64}`), {
      key: this.key,
      dsaEncoding: 'ieee-p1363',
    });
    const now = new Date(iat * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      metadata: { name, namespace, creationTimestamp: now },
      spec: {
        audiences,
        expirationSeconds,
        ...(isObject(bound) ? { boundObjectRef: bound } : {}),
      },
      status: {
        token: `${head}.${body64}.${b64(sig)}`,
        expirationTimestamp: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    };
  }

  /**
   * The user a bearer token authenticates as, or undefined when it is not one of our tokens or no
   * longer valid: a bad signature, expired or not yet valid, no API audience, or its service
   * account or bound object deleted (or recreated with another uid).
   */
  authenticate(token: string): UserInfo | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    let claims: Claims;
    try {
      const head = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as { alg?: string };
      if (head.alg !== 'ES256') return undefined;
      const ok = verify(
        'sha256',
        Buffer.from(`${parts[0]}.${parts[1]}`),
        { key: this.pub, dsaEncoding: 'ieee-p1363' },
        Buffer.from(parts[2]!, 'base64url'),
      );
      if (!ok) return undefined;
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as Claims;
    } catch {
      return undefined;
    }
    const now = Math.floor(this.clock() / 1000);
    if (claims.iss !== this.issuer || now >= claims.exp || now < claims.nbf) return undefined;
    if (!claims.aud.some((a) => this.apiAudiences.includes(a))) return undefined;
    const k = claims['kubernetes.io'];
    const alive = (plural: string, ns: string | undefined, ref: { name: string; uid: string } | undefined) =>
      ref === undefined || this.store.get(plural, ns, ref.name)?.metadata.uid === ref.uid;
    if (!alive('serviceaccounts', k.namespace, k.serviceaccount)) return undefined;
    if (!alive('pods', k.namespace, k.pod) || !alive('secrets', k.namespace, k.secret)) return undefined;
    const extra: Record<string, string[]> = {
      'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
    };
    if (k.pod) {
      extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
    }
    if (k.node) {
      extra['authentication.kubernetes.io/node-name'] = [k.node.name];
      extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
    }
    return {
      username: claims.sub,
      uid: k.serviceaccount.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'],
      extra,
    };
  }
}

/** One line of a static token file: a bearer token and the user it names. */
export interface StaticToken {
  token: string;
  username: string;
  uid?: string;
  groups?: string[];
}

/**
 * Parses kube-apiserver's --token-auth-file format: one `token,user,uid[,"group1,group2"]` per line
 * (blank lines and `#` comments skipped). Throws naming the line of a malformed entry.
 */
export function parseTokenAuthFile(text: string): StaticToken[] {
  const out: StaticToken[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^([^,]+),([^,]+),([^,]*)(?:,"?([^"]*)"?)?$/.exec(line);
    if (!m || !m[1]!.trim() || !m[2]!.trim())
      throw new Error(
        `token file line ${i + 1}: expected token,user,uid[,"groups"], got ${JSON.stringify(line)}`,
      );
    const t: StaticToken = { token: m[1]!.trim(), username: m[2]!.trim() };
    if (m[3]!.trim()) t.uid = m[3]!.trim();
    const groups = (m[4] ?? '')
      .split(',')
      .map((g) => g.trim())
      .filter(Boolean);
    if (groups.length) t.groups = groups;
    out.push(t);
  });
  return out;
}

/** The users of static tokens, keyed by token, as the server authenticates them. */
export function staticTokenUsers(tokens: StaticToken[]): Map<string, UserInfo> {
  return new Map(
    tokens.map((t) => [
      t.token,
      {
        username: t.username,
        ...(t.uid ? { uid: t.uid } : {}),
        groups: [...(t.groups ?? []), 'system:authenticated'],
        extra: {},
      },
    ]),
  );
}
