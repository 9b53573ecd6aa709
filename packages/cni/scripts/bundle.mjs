// Bundles the plugin so a process start loads one module instead of resolving hundreds (the
// runtime starts one process per pod and per command):
// - dist/podnet-cni-bundle.cjs: everything, minified, one file;
// - dist/podnet-cni.js: the executable, a few lines that turn on Node's on-disk compile cache and
//   then import the bundle, so V8 reuses compiled code across invocations (measured: about 15 ms
//   less per process start than running the bundle directly);
// - dist/podnet-cni.snapshot: a V8 startup snapshot of the same code with every module an ADD needs
//   already evaluated (src/snapshot.ts), built by this Node binary and usable only by it;
// - dist/podnet-cni: the launcher runtimes should run, a shell script that starts this Node from
//   the snapshot (or runs podnet-cni.js when no snapshot could be built).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { patch, publish, zodEnglishOnly } from './build-lib.mjs';

// A fallback since lean-k8s (below) leaves KubeClient out: should anything still import
// @kubernetes/client-node, it gets a stub. Originally: @podnet/k8s and @podnet/ipam import
// @kubernetes/client-node statically (KubeClient), though the
// plugin never uses it: it talks HTTP itself (src/kube.ts) and gives ipam that datastore. The
// bundle swaps client-node for a generated stub with the same export names, each a function that
// throws if constructed (so accidental use fails loudly): 2.8 MB → about 0.6 MB, and 100+ ms less
// per process start.
const clientNodeExports = Object.keys(await import('@kubernetes/client-node')).filter((k) =>
  /^[A-Za-z_$][\w$]*$/.test(k),
);
const stubSource = [
  'function stub(name) {',
  '  const f = function (...args) {',
  "    if (new.target) throw new Error('@kubernetes/client-node ' + name + ' is not part of the podnet-cni bundle');",
  '    return args[0];',
  '  };',
  "  Object.defineProperty(f, 'name', { value: name });",
  '  return f;',
  '}',
  ...clientNodeExports.map((k) => `export const ${k} = stub(${JSON.stringify(k)});`),
].join('\n');
const stubClientNode = {
  name: 'stub-client-node',
  setup(b) {
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: 'client-node', namespace: 'stub' }));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: stubSource, loader: 'js' }));
  },
};

// @podnet/native loads its addon from ../build/Release relative to its own module. In the bundle
// the addon sits next to the bundle (dist/podnet_native.node, copied below), so the bundle can be
// installed anywhere with that one file beside it (e.g. /opt/cni/bin).
const nativeNextToBundle = patch(
  'native-next-to-bundle',
  /[\\/]native[\\/]dist[\\/]index\.js$/,
  "const path = '../build/Release/podnet_native.node';",
  'const path = globalThis.__podnetNativeAddon;',
);

// @podnet/k8s's index re-exports everything (KubeClient over client-node, informers, CRD rendering,
// install), and esbuild keeps and runs every re-exported module (measured: ~18 ms of each ADD's
// start in k8s/dist/client.js alone). The plugin and @podnet/ipam use only the schemas, resource
// definitions, errors, addresses and selectors, so in the bundle '@podnet/k8s' is that subset, plus
// a KubeClient that throws if constructed (ipam builds one only without a datastore; the plugin
// always gives it one). A name imported from outside the subset fails the build, loudly.
const K8S_SUBSET = ['errors', 'net', 'order', 'selector', 'schemas', 'resources'];
const leanK8s = {
  name: 'lean-k8s',
  setup(b) {
    b.onResolve({ filter: /^@podnet\/k8s$/ }, () => ({ path: 'k8s', namespace: 'lean-k8s' }));
    b.onLoad({ filter: /.*/, namespace: 'lean-k8s' }, () => {
      const dir = dirname(createRequire(import.meta.url).resolve('@podnet/k8s'));
      return {
        resolveDir: dir,
        loader: 'js',
        contents: [
          ...K8S_SUBSET.map((m) => `export * from ${JSON.stringify(join(dir, `${m}.js`))};`),
          'export class KubeClient {',
          "  constructor() { throw new Error('@podnet/k8s KubeClient is not part of the podnet-cni bundle'); }",
          '}',
        ].join('\n'),
      };
    });
  },
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** What both bundles (the script's and the snapshot's) are built with. */
const common = {
  write: false,
  bundle: true,
  platform: 'node',
  // CommonJS on purpose: builtins are then loaded with require(), and Node does not build ESM
  // facades for them (which enumerates every export of node:http, node:crypto… and cost ~30 ms
  // per process in a CPU profile).
  format: 'cjs',
  target: 'node22',
  // PODNET_CNI_NO_MINIFY=1 keeps names readable in CPU profiles (--cpu-prof).
  minify: process.env.PODNET_CNI_NO_MINIFY !== '1',
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'import.meta.url': '__podnetModuleUrl' },
};
const bundled = await build({
  ...common,
  entryPoints: [join(dist, 'cli.js')],
  outfile: join(dist, 'podnet-cni-bundle.cjs'),
  plugins: [leanK8s, stubClientNode, nativeNextToBundle, zodEnglishOnly],
  banner: {
    js: [
      "var __podnetModuleUrl = require('node:url').pathToFileURL(__filename).href;",
      "globalThis.__podnetNativeAddon = require('node:path').join(__dirname, 'podnet_native.node');",
    ].join('\n'),
  },
});
const nativeAddon = join(
  dirname(createRequire(import.meta.url).resolve('@podnet/native')),
  '..',
  'build',
  'Release',
  'podnet_native.node',
);
const bundle = bundled.outputFiles[0].contents;
publish(join(dist, 'podnet-cni-bundle.cjs'), bundle);
publish(join(dist, 'podnet_native.node'), readFileSync(nativeAddon), 0o755);
// The name @podnet/agent's install-cni copies (to <binDir>/podnet-cni.js, outside any package, where
// .js is CommonJS). Do not run it inside this package: here .js means ESM; use podnet-cni.js.
publish(join(dist, 'podnet-cni-bundle.js'), bundle);

publish(
  join(dist, 'podnet-cni.js'),
  [
    '#!/usr/bin/env node',
    '// podnet CNI plugin launcher: compile cache on, then the bundle.',
    "const { createRequire, enableCompileCache } = process.getBuiltinModule('node:module');",
    'try {',
    '  enableCompileCache?.(process.env.PODNET_CNI_COMPILE_CACHE);',
    '} catch {}',
    "createRequire(import.meta.url)('./podnet-cni-bundle.cjs');",
    '',
  ].join('\n'),
  0o755,
);

// --- The startup snapshot --------------------------------------------------------------------------
// `node --build-snapshot` runs one script and keeps the heap it leaves. Node can snapshot only some
// builtins: the ones it cannot (http, https, tls, net, child_process, module, diagnostics_channel)
// are replaced by objects whose properties load the real module on first use, at run time. The
// rtnetlink addon cannot be in a snapshot either: its loading is deferred to the first call, and
// done with process.dlopen (createRequire comes from node:module, which is not snapshotted).
const NOT_SNAPSHOTTED = /^(node:)?(http|https|tls|net|child_process|module|diagnostics_channel)$/;
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: NOT_SNAPSHOTTED }, (a) => ({
      path: a.path.startsWith('node:') ? a.path : `node:${a.path}`,
      namespace: 'lazy-builtin',
    }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (a) => {
      const names = Object.keys(await import(a.path)).filter((k) => k !== 'default');
      return {
        loader: 'js',
        contents: [
          'let m;',
          `const load = () => (m ??= process.getBuiltinModule(${JSON.stringify(a.path)}));`,
          `for (const k of ${JSON.stringify(names)})`,
          '  Object.defineProperty(exports, k, { get: () => load()[k], enumerable: true });',
        ].join('\n'),
      };
    });
  },
};
const nativeDeferred = {
  name: 'native-deferred',
  setup(b) {
    b.onLoad({ filter: /[\\/]native[\\/]dist[\\/]index\.js$/ }, async (args) => {
      let src = await readFile(args.path, 'utf8');
      const edits = [
        [
          "const path = '../build/Release/podnet_native.node';",
          'const path = globalThis.__podnetNativeAddon;',
        ],
        ['const require = createRequire(import.meta.url);', ''],
        ['return require(path);', 'const m = { exports: {} }; process.dlopen(m, path); return m.exports;'],
        [
          'const binding = loadBinding();',
          'let loaded; const binding = new Proxy({}, { get: (_, k) => (loaded ??= loadBinding())[k] });',
        ],
      ];
      for (const [from, to] of edits) {
        if (!src.includes(from)) throw new Error(`${args.path}: "${from}" was not found (snapshot patch)`);
        src = src.replace(from, to);
      }
      return { contents: src, loader: 'js' };
    });
  },
};

/**
 * Bundles src/snapshot.ts, builds the snapshot with this Node and checks that it answers VERSION;
 * returns why not, if not (the launcher then runs the script form).
 */
async function buildSnapshot() {
  const snapshotEntry = await build({
    ...common,
    entryPoints: [join(dist, 'snapshot.js')],
    outfile: join(dist, 'podnet-cni-snapshot.cjs'),
    plugins: [leanK8s, stubClientNode, nativeDeferred, lazyBuiltins, zodEnglishOnly],
    banner: {
      js: [
        `var __podnetModuleUrl = ${JSON.stringify(pathToFileURL(join(dist, 'podnet-cni-snapshot.cjs')).href)};`,
        `globalThis.__podnetNativeAddon = ${JSON.stringify(join(dist, 'podnet_native.node'))};`,
      ].join('\n'),
    },
  });
  publish(join(dist, 'podnet-cni-snapshot.cjs'), snapshotEntry.outputFiles[0].contents);
  const blob = join(dist, 'podnet-cni.snapshot');
  const tmp = `${blob}.${process.pid}.tmp`;
  const made = spawnSync(
    process.execPath,
    ['--snapshot-blob', tmp, '--build-snapshot', join(dist, 'podnet-cni-snapshot.cjs')],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (made.status !== 0) {
    rmSync(tmp, { force: true });
    return `node --build-snapshot failed: ${made.stderr || made.error?.message}`;
  }
  const probe = spawnSync(process.execPath, ['--snapshot-blob', tmp, dist], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, CNI_COMMAND: 'VERSION' },
    input: '',
  });
  if (probe.status !== 0 || !probe.stdout.includes('supportedVersions')) {
    rmSync(tmp, { force: true });
    return `the snapshot does not answer VERSION: ${probe.stderr || probe.stdout}`;
  }
  if (existsSync(blob) && readFileSync(blob).equals(readFileSync(tmp))) rmSync(tmp);
  else renameSync(tmp, blob);
  return undefined;
}

const shq = (s) => `'${s.replaceAll("'", "'\\''")}'`;
const snapshotProblem =
  process.env.PODNET_CNI_NO_SNAPSHOT === '1'
    ? 'PODNET_CNI_NO_SNAPSHOT=1'
    : await buildSnapshot().catch((err) => `bundling src/snapshot.ts failed: ${err.message}`);
if (snapshotProblem) {
  console.warn(`podnet-cni: no startup snapshot (${snapshotProblem}); dist/podnet-cni runs the bundle`);
  rmSync(join(dist, 'podnet-cni.snapshot'), { force: true });
}
publish(
  join(dist, 'podnet-cni'),
  [
    '#!/bin/sh',
    '# podnet CNI plugin launcher, written by scripts/bundle.mjs for the Node binary that built it.',
    snapshotProblem
      ? `# No startup snapshot could be built (${snapshotProblem.split('\n')[0]}): run the bundle.`
      : "# Starts Node from the plugin's startup snapshot; the argument is the directory of the addon.",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    'case $0 in */*) d=${0%/*} ;; *) d=. ;; esac',
    snapshotProblem
      ? `exec ${shq(process.execPath)} "$d/podnet-cni.js"`
      : `exec ${shq(process.execPath)} --snapshot-blob "$d/podnet-cni.snapshot" "$d"`,
    '',
  ].join('\n'),
  0o755,
);
