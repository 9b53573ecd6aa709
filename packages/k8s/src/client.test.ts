import { ApiException } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadKubeConfig, toK8sError } from './client.js';
import { K8S_ERR } from './errors.js';
import { backoffDelay, objectKey } from './informer.js';

describe('toK8sError', () => {
  const status = (reason: string, message: string) => JSON.stringify({ kind: 'Status', reason, message });
  it.each([
    [404, status('NotFound', 'ippools "x" not found'), K8S_ERR.NOT_FOUND],
    [409, status('AlreadyExists', 'exists'), K8S_ERR.ALREADY_EXISTS],
    [409, status('Conflict', 'the object has been modified'), K8S_ERR.CONFLICT],
    [410, status('Expired', 'too old resource version'), K8S_ERR.GONE],
    [422, status('Invalid', 'spec.cidr: Invalid value'), K8S_ERR.INVALID],
    [401, undefined, K8S_ERR.UNAUTHORIZED],
    [403, status('Forbidden', 'no'), K8S_ERR.FORBIDDEN],
    [500, 'oops', K8S_ERR.SERVER],
  ])('maps HTTP %i to its code and keeps the server message', (code, body, want) => {
    const e = toK8sError(new ApiException(code, 'msg', body, {}), 'get IPPool "x"');
    expect(e.code).toBe(want);
    expect(e.status).toBe(code);
    expect(e.message).toMatch(/^get IPPool "x": /);
    if (body?.startsWith('{')) expect(e.message).toContain(JSON.parse(body).message);
  });

  it('maps a refused connection to UNREACHABLE with the errno', () => {
    const err = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const e = toK8sError(err, 'list IPPool');
    expect(e.code).toBe(K8S_ERR.UNREACHABLE);
    expect(e.message).toContain('ECONNREFUSED');
  });
});

describe('loadKubeConfig', () => {
  it('fails with K8S_ERR_CONFIG naming the file', () => {
    expect(() => loadKubeConfig({ kubeconfigPath: '/nonexistent/kubeconfig' })).toThrow(
      expect.objectContaining({
        code: K8S_ERR.CONFIG,
        message: expect.stringContaining('/nonexistent/kubeconfig'),
      }),
    );
  });
});

describe('informer helpers', () => {
  it('backs off within [initial/2, min(max, initial*2^attempt)] and grows with attempts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, r) => {
          const d = backoffDelay(attempt, 200, 30_000, () => r);
          expect(d).toBeGreaterThanOrEqual(100);
          expect(d).toBeLessThanOrEqual(Math.min(30_000, 200 * 2 ** attempt));
        },
      ),
    );
    expect(backoffDelay(10, 200, 30_000, () => 0.999)).toBeGreaterThan(
      backoffDelay(1, 200, 30_000, () => 0.999),
    );
  });

  it('keys namespaced objects by namespace/name and cluster objects by name', () => {
    expect(objectKey({ metadata: { name: 'p', namespace: 'default' } })).toBe('default/p');
    expect(objectKey({ metadata: { name: 'pool' } })).toBe('pool');
  });
});
