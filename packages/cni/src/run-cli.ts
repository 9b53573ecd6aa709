// The body of the `podnet-cni` executable, shared by its two entry points: cli.ts (the bundle, run
// as a script) and snapshot.ts (the same code started from a V8 startup snapshot). VERSION is
// answered before anything heavy loads; every other command loads the plugin lazily (in the
// snapshot it is already loaded, and the dynamic imports resolve at once).
import { versionInfo } from './version.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  if (process.env.CNI_COMMAND === 'VERSION') {
    process.stdout.write(`${JSON.stringify(versionInfo())}\n`);
    return;
  }
  // zod compiles each object schema to a function (new Function) on its first parse; a process that
  // parses each schema a few times and exits is faster interpreting them.
  (await import('zod')).z.config({ jitless: process.env.PODNET_CNI_ZOD_JIT !== '1' });
  const { runPlugin } = await import('./main.js');
  const out = await runPlugin(process.env, await readStdin());
  if (out.stdout) process.stdout.write(out.stdout);
  process.exitCode = out.exitCode;
}

/** Runs one CNI invocation from the process's environment and stdin; sets the exit code. */
export function runCli(): Promise<void> {
  return main().catch((err: unknown) => {
    // runPlugin never throws; this is a last resort that still answers in the CNI error format.
    const msg = err instanceof Error ? err.message : String(err);
    process.stdout.write(
      `${JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: `podnet-cni crashed: ${msg}` })}\n`,
    );
    process.exitCode = 1;
  });
}
