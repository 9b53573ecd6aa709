#!/usr/bin/env node
// podnet-lab-echo, run by the lab inside a namespace (`ip netns exec NS node echo-cli.js …`):
//   serve [--port 7777] [--lifetime-s 600]   answer TCP and UDP with the source address seen;
//                                             stops by itself after the lifetime
//   probe [--timeout-ms 2000] TARGET…        TARGET = tcp:ADDR:PORT | udp:[ADDR6]:PORT; prints one
//                                             JSON object per target: {proto, address, port, seen?, error?}
import { parseArgs } from 'node:util';
import {
  DEFAULT_ECHO_LIFETIME_S,
  DEFAULT_ECHO_PORT,
  parseTarget,
  probeAll,
  startEchoServer,
} from './echo.js';
import { exitWhenFlushed } from './sh.js';

function int(name: string, text: string | undefined, dflt: number, min: number, max: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} ${JSON.stringify(text)}: expected an integer ${min}..${max}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      'lifetime-s': { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  const [command, ...rest] = positionals;
  if (command === 'serve') {
    const port = int('port', values.port, DEFAULT_ECHO_PORT, 1, 65535);
    const lifetime = int('lifetime-s', values['lifetime-s'], DEFAULT_ECHO_LIFETIME_S, 1, 86_400);
    const server = await startEchoServer(port);
    process.stdout.write(`echo: listening on tcp and udp port ${port} for ${lifetime} s\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      setTimeout(stop, lifetime * 1000);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    await server.close();
    return 0;
  }
  if (command === 'probe') {
    const timeoutMs = int('timeout-ms', values['timeout-ms'], 2000, 10, 60_000);
    const results = await probeAll(rest.map(parseTarget), timeoutMs);
    for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
    return 0;
  }
  throw new Error(`usage: echo serve [--port P] [--lifetime-s S] | echo probe [--timeout-ms T] TARGET…`);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    process.stderr.write(`echo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
