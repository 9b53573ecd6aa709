// The `podnet-cni` executable (bundled by esbuild, see scripts/bundle.mjs). VERSION is answered
// before anything heavy loads; every other command loads the plugin lazily.
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
  const { runPlugin } = await import('./main.js');
  const out = await runPlugin(process.env, await readStdin());
  if (out.stdout) process.stdout.write(out.stdout);
  process.exitCode = out.exitCode;
}

main().catch((err: unknown) => {
  // runPlugin never throws; this is a last resort that still answers in the CNI error format.
  const msg = err instanceof Error ? err.message : String(err);
  process.stdout.write(
    `${JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: `podnet-cni crashed: ${msg}` })}\n`,
  );
  process.exitCode = 1;
});
