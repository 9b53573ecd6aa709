import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError } from './errors.js';
import {
  fieldValue,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.js';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front', 'podnet.io/node': 'n1', count: '5' };
  it.each([
    ['', true],
    ['app', true],
    ['!app', false],
    ['!missing', true],
    ['missing', false],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (db, web)', true],
    ['app in (db)', false],
    ['app notin (db)', true],
    ['app notin (web,db)', false],
    ['missing notin (x)', true],
    ['missing in (x)', false],
    ['podnet.io/node=n1', true],
    ['count>4', true],
    ['count<5', false],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['app in (web,db),tier notin (back),!missing', true],
    [' app = web , tier ', true],
  ])('%j matches %s against the fixture labels', (selector, want) => {
    expect(matchesLabels(parseLabelSelector(selector), labels)).toBe(want);
  });

  it.each(['a in (b', 'a=b=c', 'a in (b c)', 'Bad Key=x', 'a=b,,c', 'a>x', '=x'])(
    'rejects %j with a 400 BadRequest naming the selector',
    (selector) => {
      let err: unknown;
      try {
        parseLabelSelector(selector);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).httpCode).toBe(400);
      expect((err as ApiError).message).toContain(selector);
    },
  );

  it('an equality selector built from a label set matches exactly the sets that contain it', () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
    const value = fc.stringMatching(/^[a-z0-9]{0,4}$/);
    fc.assert(
      fc.property(fc.dictionary(key, value), fc.dictionary(key, value), (want, have) => {
        const selector = Object.entries(want)
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        const expected = Object.entries(want).every(([k, v]) => have[k] === v);
        expect(matchesLabels(parseLabelSelector(selector), have)).toBe(expected);
      }),
    );
  });
});

describe('field selectors', () => {
  const supported = new Set(['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase']);
  const pod = {
    metadata: { name: 'p', namespace: 'ns' },
    spec: { nodeName: 'n1' },
    status: { phase: 'Running' },
  };
  it.each([
    ['spec.nodeName=n1', true],
    ['spec.nodeName==n1', true],
    ['spec.nodeName!=n1', false],
    ['spec.nodeName=n2', false],
    ['metadata.name=p,metadata.namespace=ns', true],
    ['status.phase=Pending', false],
  ])('%j matches %s', (selector, want) => {
    expect(matchesFields(parseFieldSelector(selector, supported), pod)).toBe(want);
  });

  it('rejects a field the resource does not support, naming it', () => {
    expect(() => parseFieldSelector('spec.hostname=x', supported)).toThrow(
      'field label not supported: spec.hostname',
    );
  });

  it('reads a missing path as the empty string', () => {
    expect(fieldValue(pod, 'spec.missing.deeper')).toBe('');
    expect(matchesFields(parseFieldSelector('spec.nodeName=', supported), { metadata: {} })).toBe(true);
  });
});
