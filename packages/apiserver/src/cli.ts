#!/usr/bin/env node
// podnet-apiserver: runs the embedded Kubernetes API server until SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseTokenAuthFile, type StaticToken, startApiServer } from './index.js';
import type { LoggerLike } from './server.js';

const USAGE = `usage: podnet-apiserver [options]

  --port N            port to listen on (default 6443; 0 picks a free one)
  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --data FILE         keep objects in FILE across restarts
  --kubeconfig FILE   write a kubeconfig for clients to FILE
  --token TOKEN       bearer token clients must present (default: $PODNET_APISERVER_TOKEN,
                      else the one kept in --data, else a generated one)
  --token-auth-file F more bearer tokens, one token,user,uid[,"groups"] a line (as
                      kube-apiserver); requests are counted per user: GET /debug/podnet/requests
  --advertise ADDR    address clients use (kubeconfig server, certificate); repeatable
  --no-tls            serve plain HTTP instead of HTTPS
  --service-cluster-ip-range CIDRS
                      Service cluster IPs: one CIDR, or one per family, comma-separated
                      (default 10.96.0.0/12,fd00:10:96::/108)
  --service-node-port-range FIRST-LAST
                      Service node ports (default 30000-32767)
  --log-level LEVEL   debug | info | warn | error (default info)
  -h, --help          show this help
`;

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
type Level = keyof typeof LEVELS;

/** A pino-compatible JSON-lines logger on stderr (the package takes no logging dependency). */
function jsonLogger(min: Level, bindings: object = {}): LoggerLike {
  const at = (level: Level) => (obj: object, msg?: string) => {
    if (LEVELS[level] < LEVELS[min]) return;
    process.stderr.write(
      `${JSON.stringify({ level: LEVELS[level], time: Date.now(), ...bindings, ...obj, msg })}\n`,
    );
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => jsonLogger(min, { ...bindings, ...b }),
  };
}

function fail(message: string): never {
  process.stderr.write(`podnet-apiserver: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    fail((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port = Number(v.port ?? '6443');
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    fail(`--port: invalid port "${v.port}" (want 0-65535)`);
  const level = (v['log-level'] ?? 'info') as Level;
  if (!(level in LEVELS))
    fail(`--log-level: invalid level "${v['log-level']}" (want debug, info, warn or error)`);
  const logger = jsonLogger(level);
  let staticTokens: StaticToken[] = [];
  if (v['token-auth-file'])
    try {
      staticTokens = parseTokenAuthFile(readFileSync(v['token-auth-file'], 'utf8'));
    } catch (err) {
      fail(`--token-auth-file ${v['token-auth-file']}: ${(err as Error).message}`);
    }
  const server = await startApiServer({
    port,
    host: v.host ?? '127.0.0.1',
    tls: !v['no-tls'],
    ...((v.token ?? process.env.PODNET_APISERVER_TOKEN)
      ? { token: v.token ?? process.env.PODNET_APISERVER_TOKEN }
      : {}),
    ...(v.data ? { dataFile: v.data } : {}),
    ...(v.kubeconfig ? { kubeconfigPath: v.kubeconfig } : {}),
    ...(v.advertise?.length ? { advertise: v.advertise } : {}),
    ...(v['service-cluster-ip-range']
      ? { serviceClusterIPRange: v['service-cluster-ip-range'].split(',') }
      : {}),
    ...(v['service-node-port-range'] ? { serviceNodePortRange: v['service-node-port-range'] } : {}),
    ...(staticTokens.length ? { staticTokens } : {}),
    logger,
  });
  process.stdout.write(`podnet-apiserver listening on ${server.url}\n`);
  if (server.kubeconfigPath) process.stdout.write(`kubeconfig written to ${server.kubeconfigPath}\n`);
  else
    process.stdout.write(
      '(no --kubeconfig given: clients need the token and, for TLS, the CA from the data)\n',
    );
  if (v.data) process.stdout.write(`objects kept in ${v.data}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`podnet-apiserver: ${signal}, stopping\n`);
    server.close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`podnet-apiserver: error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function parse() {
  return parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      kubeconfig: { type: 'string' },
      token: { type: 'string' },
      'token-auth-file': { type: 'string' },
      advertise: { type: 'string', multiple: true },
      'no-tls': { type: 'boolean' },
      'service-cluster-ip-range': { type: 'string' },
      'service-node-port-range': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
}

main().catch((err) => {
  process.stderr.write(`podnet-apiserver: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
