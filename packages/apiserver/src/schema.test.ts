import { describe, expect, it } from 'vitest';
import type { StatusCause } from './errors.js';
import { applyStructuralSchema } from './schema.js';

const schema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      required: ['cidr'],
      properties: {
        cidr: { type: 'string', pattern: '^[0-9a-f.:/]+$' },
        blockSize: { type: 'integer', default: 26, minimum: 20, maximum: 128 },
        mode: { type: 'string', enum: ['Always', 'Never'], default: 'Never' },
        nodeSelector: { type: 'object', additionalProperties: { type: 'string' } },
        peers: {
          type: 'array',
          maxItems: 2,
          items: { type: 'object', properties: { ip: { type: 'string' } } },
        },
        free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        port: { 'x-kubernetes-int-or-string': true },
      },
    },
  },
};

function apply(obj: Record<string, unknown>) {
  const out: StatusCause[] = [];
  const res = applyStructuralSchema(obj, schema, out);
  return { res, causes: out };
}

describe('structural schema', () => {
  it('fills defaults, prunes unknown fields and keeps apiVersion, kind and metadata', () => {
    const { res, causes } = apply({
      apiVersion: 'x/v1',
      kind: 'X',
      metadata: { name: 'a', anything: 1 },
      spec: {
        cidr: '10.0.0.0/8',
        junk: 1,
        peers: [{ ip: '1.2.3.4', extra: true }],
        free: { a: { b: 1 } },
        port: 'bgp',
      },
      topLevelJunk: 1,
    });
    expect(causes).toEqual([]);
    expect(res).toEqual({
      apiVersion: 'x/v1',
      kind: 'X',
      metadata: { name: 'a', anything: 1 },
      spec: {
        cidr: '10.0.0.0/8',
        blockSize: 26,
        mode: 'Never',
        peers: [{ ip: '1.2.3.4' }],
        free: { a: { b: 1 } },
        port: 'bgp',
      },
    });
  });

  it.each([
    [{ cidr: 5 }, 'spec.cidr', 'FieldValueTypeInvalid'],
    [{}, 'spec.cidr', 'FieldValueRequired'],
    [{ cidr: 'ZZ' }, 'spec.cidr', 'FieldValueInvalid'],
    [{ cidr: '10.0.0.0/8', blockSize: 4 }, 'spec.blockSize', 'FieldValueInvalid'],
    [{ cidr: '10.0.0.0/8', blockSize: 26.5 }, 'spec.blockSize', 'FieldValueTypeInvalid'],
    [{ cidr: '10.0.0.0/8', mode: 'Sometimes' }, 'spec.mode', 'FieldValueNotSupported'],
    [{ cidr: '10.0.0.0/8', nodeSelector: { a: 1 } }, 'spec.nodeSelector.a', 'FieldValueTypeInvalid'],
    [{ cidr: '10.0.0.0/8', peers: [{}, {}, {}] }, 'spec.peers', 'FieldValueInvalid'],
    [{ cidr: '10.0.0.0/8', port: 1.5 }, 'spec.port', 'FieldValueTypeInvalid'],
  ])('reports %j as a problem at %s (%s)', (spec, field, reason) => {
    const { causes } = apply({ spec });
    expect(causes).toEqual([expect.objectContaining({ field, reason })]);
  });
});
