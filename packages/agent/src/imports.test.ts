// The agent loads only the stand-alone parts of @kubernetes/client-node (docs/footprint.md). Its
// index pulls in every generated API and model (~35 MB of module source and code in a running
// agent), and one value import of it anywhere in the agent's modules loads all of that at start.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

/**
 * Imports every module of the built agent but the entry points (cli.js and its bundle start it) and
 * lists what resolved into client-node.
 */
const SCRIPT = `
import { registerHooks } from 'node:module';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const seen = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    const at = r.url.indexOf('/@kubernetes/client-node/');
    if (at >= 0) seen.add(r.url.slice(at + '/@kubernetes/client-node/'.length));
    return r;
  },
});
const dist = process.argv[1];
const files = readdirSync(dist, { recursive: true })
  .filter((f) => f.endsWith('.js') && !['cli.js', 'podnet-agent.js'].includes(f))
  .sort();
for (const f of files) await import(pathToFileURL(join(dist, f)).href);
console.log(JSON.stringify({ modules: files.length, clientNode: [...seen].sort() }));
`;

it('importing every agent module loads only client-node kubeconfig and authentication files', () => {
  const out = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', SCRIPT, DIST], { encoding: 'utf8' }),
  ) as { modules: number; clientNode: string[] };
  expect(out.modules).toBeGreaterThan(40);
  expect(out.clientNode).toEqual(['dist/config_types.js', 'dist/exec_auth.js', 'dist/file_auth.js']);
});

// The bundle (scripts/bundle.mjs) is what `podnet-agent` runs: the same rule holds for what it
// carries, and it must load and answer.
it('the podnet-agent bundle carries only those client-node files, is ASCII, and runs', () => {
  const bundle = readFileSync(join(DIST, 'podnet-agent.js'), 'utf8');
  // esbuild (not minifying) heads each bundled module with a comment naming its path.
  const clientNode = [...bundle.matchAll(/^\/\/ \S*@kubernetes\/client-node\/(\S+)$/gm)]
    .map((m) => m[1])
    .sort();
  expect(clientNode).toEqual(['dist/config_types.js', 'dist/exec_auth.js', 'dist/file_auth.js']);
  // One non-ASCII character would make V8 hold the whole 2 MB source as UTF-16.
  expect(bundle.match(/[^\x00-\x7f]/)?.[0]).toBeUndefined();
  // At exit, whether Node's fetch implementation (undici) was loaded: an ES module import of
  // node:http does (scripts/bundle.mjs, builtinsByRequire).
  const atExit = `process.on('exit', () => process.stdout.write('undici:' + process.moduleLoadList.some((m) => m.includes('undici'))))`;
  const help = execFileSync(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(atExit)}`,
      join(DIST, 'podnet-agent.js'),
      '--help',
    ],
    { encoding: 'utf8' },
  );
  expect(help).toMatch(/^usage: podnet-agent/m);
  expect(help).toContain('--cni-spare-addresses');
  expect(help).toMatch(/undici:false$/);
});
