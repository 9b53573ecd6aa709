// Validation of a compose file against the Compose Specification's JSON schema (vendored in
// ../schema/compose-spec.json). Pure apart from reading the schema once.
import { readFileSync } from 'node:fs';
import Ajv2019 from 'ajv/dist/2019.js';

const schemaUrl = new URL('../schema/compose-spec.json', import.meta.url);

export interface SpecProblem {
  /** JSON pointer to the offending value, e.g. `/services/tor/networks`. */
  path: string;
  message: string;
}

type Validator = ((doc: unknown) => boolean) & {
  errors?: { instancePath: string; message?: string; params?: unknown }[] | null;
};
let compiled: Validator | undefined;

function validator(): Validator {
  if (compiled) return compiled;
  const schema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as Record<string, unknown>;
  // The schema names the draft 2019-09 meta-schema by its old http URL, which ajv registers under
  // https: drop it and compile with Ajv2019. Its draft-04 style `id` annotations (`"id":
  // "#/definitions/service"`) are refused by ajv 8 and carry no constraint: drop them too.
  delete schema.$schema;
  stripIds(schema);
  const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: true });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat('subnet_ip_address', {
    type: 'string',
    validate: (s: string) => /^[0-9.]+\/\d{1,2}$/.test(s) || /^[0-9a-fA-F:]+\/\d{1,3}$/.test(s),
  });
  ajv.addFormat('expose', true);
  ajv.addFormat('ports', true);
  compiled = ajv.compile(schema) as Validator;
  return compiled;
}

function stripIds(node: unknown): void {
  if (Array.isArray(node)) {
    for (const x of node) stripIds(x);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as Record<string, unknown>;
  if (typeof obj.id === 'string' && (obj.id.startsWith('#') || obj.id.endsWith('.json'))) delete obj.id;
  for (const v of Object.values(obj)) stripIds(v);
}

/** Validates a parsed compose document; an empty list means it is valid Compose Specification. */
export function validateComposeSpec(doc: unknown): SpecProblem[] {
  const validate = validator();
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => ({
    path: e.instancePath || '/',
    message: `${e.message ?? 'invalid'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  }));
}
