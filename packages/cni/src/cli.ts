// The `podnet-cni` executable (bundled by esbuild into dist/podnet-cni.js). VERSION is answered
// before anything heavy loads; every other command loads the plugin lazily.
import { versionInfo } from './version.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

if (process.env.CNI_COMMAND === 'VERSION') {
  process.stdout.write(`${JSON.stringify(versionInfo())}\n`);
} else {
  const { runPlugin } = await import('./main.js');
  const out = await runPlugin(process.env, await readStdin());
  if (out.stdout) process.stdout.write(out.stdout);
  process.exitCode = out.exitCode;
}
