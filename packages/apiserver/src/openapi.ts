// GET /openapi/v2: the OpenAPI document kubectl downloads before `apply` (for client-side
// validation and its field-validation check). kube-apiserver serves it as JSON or, as kubectl asks,
// as the protobuf of gnostic's openapi_v2.Document. This server describes no definitions and no
// paths: kubectl then finds no schema for a kind, skips client-side validation, and the server
// validates (custom resources against their CRD's structural schema, objects.ts for the rest).
import type { IncomingMessage, ServerResponse } from 'node:http';

// Clients ask with an '@' in the subtype; the answer's type is the form Go's mime parser accepts.
const PROTO_ACCEPT = /application\/com\.github\.proto-openapi\.spec\.v2[@.]v1\.0\+protobuf/;
const PROTO_MIME = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

/** Protobuf length-delimited field (wire type 2). */
function field(no: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    len.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...len]), body]);
}

/** gnostic openapi_v2.Document: swagger = 1, info = 2 (Info: title = 1, version = 2), paths = 8. */
export function openApiV2Protobuf(title: string, version: string): Buffer {
  const info = Buffer.concat([field(1, Buffer.from(title)), field(2, Buffer.from(version))]);
  return Buffer.concat([field(1, Buffer.from('2.0')), field(2, info), field(8, Buffer.alloc(0))]);
}

export function openApiV2(req: IncomingMessage, res: ServerResponse, version: string): void {
  const title = 'Kubernetes (podnet embedded API server)';
  const accept = String(req.headers.accept ?? '');
  if (PROTO_ACCEPT.test(accept)) {
    const body = openApiV2Protobuf(title, version);
    res.writeHead(200, { 'Content-Type': PROTO_MIME, 'Content-Length': body.length });
    res.end(body);
    return;
  }
  const text = JSON.stringify({ swagger: '2.0', info: { title, version }, paths: {}, definitions: {} });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
