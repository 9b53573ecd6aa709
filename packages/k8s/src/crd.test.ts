import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCrdFiles, structural } from './crd.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy/crds');

describe('deploy/crds', () => {
  const files = renderCrdFiles();

  it('is up to date with the zod schemas (run `npm run gen:crds -w @podnet/k8s`)', () => {
    const onDisk = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(onDisk.sort()).toEqual([...files.keys()].sort());
    for (const [name, text] of files) {
      expect(readFileSync(join(dir, name), 'utf8'), `deploy/crds/${name} is stale`).toBe(text);
    }
  });

  it('gives every schema node a type and never uses $ref or closed additionalProperties', () => {
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
      const o = node as Record<string, unknown>;
      expect(o.type ?? o['x-kubernetes-preserve-unknown-fields'], `type at ${path}`).toBeDefined();
      expect(o.$ref, `$ref at ${path}`).toBeUndefined();
      expect(o.additionalProperties, `additionalProperties at ${path}`).not.toBe(false);
      for (const [k, v] of Object.entries((o.properties as Record<string, unknown>) ?? {}))
        walk(v, `${path}.${k}`);
      if (o.items) walk(o.items, `${path}[]`);
      if (o.additionalProperties && typeof o.additionalProperties === 'object')
        walk(o.additionalProperties, `${path}{}`);
    };
    for (const [name, text] of files) {
      if (name === 'kustomization.yaml') continue;
      const crd = parse(text);
      expect(crd.kind).toBe('CustomResourceDefinition');
      const v = crd.spec.versions[0];
      walk(v.schema.openAPIV3Schema, crd.metadata.name);
      expect(v.additionalPrinterColumns.length).toBeGreaterThan(0);
    }
  });

  it('carries the schema defaults into the CRD', () => {
    const bgp = parse(files.get('podnet.io_bgpconfigurations.yaml')!);
    const spec = bgp.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect(spec.asNumber.default).toBe(64512);
    expect(spec.nodeToNodeMesh.default).toBe(true);
    expect(spec.listenPort.default).toBe(179);
  });

  it('refuses schema nodes that would not be structural', () => {
    expect(() => structural({ anyOf: [{ type: 'string' }, { type: 'integer' }] })).toThrow(/union/);
    expect(() => structural({ description: 'no type' })).toThrow(/without a type/);
    expect(structural({ type: 'object', additionalProperties: {} })).toEqual({
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
    });
  });
});
