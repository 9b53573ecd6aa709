// What the API server's client-level tests share: a merge-patch header, the status and Status body
// of a call that must fail, its 422 causes, and a raw GET with the server's CA and token.
import { request } from 'node:https';
import { ApiException, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { expect } from 'vitest';
import type { ApiServer } from '../index.js';

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface Cause {
  field?: string;
  reason: string;
  message: string;
}

/** The HTTP status and Status body of a call that must fail. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiException) {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      return { code: err.code, body };
    }
    throw err;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** The causes of a call that must fail with 422 Invalid. */
export async function invalid(p: Promise<unknown>): Promise<Cause[]> {
  const f = await failure(p);
  expect(f.code).toBe(422);
  expect(f.body.reason).toBe('Invalid');
  return (f.body.details as { causes: Cause[] }).causes;
}

/** GET `path` from the server over HTTPS with its own CA and token, as parsed JSON. */
export function getJson(server: ApiServer, caData: string, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      { ca: Buffer.from(caData, 'base64'), headers: { authorization: `Bearer ${server.token}` } },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve(JSON.parse(body)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
