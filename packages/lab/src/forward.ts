// A byte pipe between a listener and a target, each a unix socket (`unix:/path`) or TCP
// (`tcp:host:port`). The filesystem is shared across network namespaces, so a pair of these joins
// two namespaces without any route or link between them:
// - the runner (root namespace) reaches the lab's API server: in the API server's namespace,
//   `forward.js unix:<state>/api.sock tcp:127.0.0.1:6443`;
// - the lab's nodes reach an outside API server (KUBECONFIG mode): in the API server's namespace,
//   `forward.js tcp:0.0.0.0:6443 unix:<state>/ext-api.sock`, and in the root namespace
//   `forward.js unix:<state>/ext-api.sock tcp:<server host>:<port>`. TLS passes through untouched.
//   node forward.js <listen> <target>
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { splice } from './splice.js';

type Endpoint = { type: 'unix'; path: string } | { type: 'tcp'; host: string; port: number };

function endpoint(arg: string | undefined): Endpoint {
  if (arg?.startsWith('unix:')) return { type: 'unix', path: arg.slice(5) };
  const m = arg ? /^tcp:(\[?[^\]]*\]?|[^:]*):(\d+)$/.exec(arg) : null;
  if (m?.[1] !== undefined && m[2])
    return { type: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  console.error(`forward: ${JSON.stringify(arg)}: expected unix:/path or tcp:host:port`);
  console.error('usage: forward.js <listen> <target>');
  process.exit(2);
}

const listen = endpoint(process.argv[2]);
const target = endpoint(process.argv[3]);
const open = (): Socket =>
  target.type === 'unix' ? connect(target.path) : connect(target.port, target.host);

const server = createServer((conn) => splice(conn, open()));
if (listen.type === 'unix') {
  if (existsSync(listen.path)) unlinkSync(listen.path);
  server.listen(listen.path);
} else {
  server.listen(listen.port, listen.host);
}
const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
