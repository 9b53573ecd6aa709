// Bundles the agent into the file `podnet-agent` runs (the image, the DaemonSet, the lab):
// dist/podnet-agent.js, the agent (dist/cli.js and everything it imports), one ES module.
// Loading one module instead of ~1,100 costs less memory: Node's module loader keeps a record, a URL
// and a source string per module (measured with every agent module imported, Node 24: RSS 89.5 → 74.8
// MB, V8 heap used 15.2 → 9.9 MB; start 600 → 380 ms). dist/cli.js stays the same program unbundled
// (the unit tests import its modules).
//
// The bundle stays in dist/ next to cli.js, so the paths the agent resolves from its own module
// (../package.json, ../../cni/dist/…) are the same in both. One path is patched below.
import { isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { patch, publish, zodEnglishOnly } from '../../cni/scripts/build-lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

// @podnet/native loads its addon relative to its own module (../build/Release); from dist/ here the
// addon is ../../native/build/Release (the repository and the image keep that layout).
const nativeAddon = patch(
  'native-addon-path',
  /[\\/]native[\\/]dist[\\/]index\.js$/,
  "const path = '../build/Release/podnet_native.node';",
  "const path = '../../native/build/Release/podnet_native.node';",
);

// Node's builtins are required, not imported: an `import` of one makes Node build an ES module
// facade that reads every export, and node:http's include getters that load the fetch
// implementation (undici, 745 KB of source, compiled and kept) although the agent never uses it.
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (a) => {
      if (!isBuiltin(a.path)) return undefined;
      const path = a.path.startsWith('node:') ? a.path : `node:${a.path}`;
      // The require() in the module made below is Node's own.
      return a.namespace === 'builtin' ? { path, external: true } : { path, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (a) => ({
      contents: `module.exports = require(${JSON.stringify(a.path)});`,
      loader: 'js',
    }));
  },
};

const common = {
  write: false,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // Not minified: stack traces in the agent's logs keep their names and lines.
  minify: false,
  legalComments: 'none',
  logLevel: 'warning',
  // Builtins are loaded with this require (builtinsByRequire, and the CommonJS packages bundled).
  banner: {
    js: "import { createRequire as __podnetCreateRequire } from 'node:module';\nconst require = __podnetCreateRequire(import.meta.url);",
  },
  // Left to Node at run time: the addon, and client-node's full index (loaded by createRequire, only
  // by tools and auth-provider kubeconfigs).
  external: ['*.node'],
};

/**
 * With charset 'ascii' esbuild escapes non-ASCII characters in strings, templates, regexps and
 * names, but keeps them in the comments it keeps. One non-ASCII character makes V8 hold the whole
 * source as UTF-16 (twice the bytes: 4.7 instead of 2.4 MB here), so what is left (comment text) is
 * escaped too.
 */
function ascii(text) {
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const agent = await build({
  ...common,
  charset: 'ascii',
  entryPoints: [join(dist, 'cli.js')],
  outfile: join(dist, 'podnet-agent.js'),
  plugins: [builtinsByRequire, nativeAddon, zodEnglishOnly],
});
publish(join(dist, 'podnet-agent.js'), ascii(agent.outputFiles[0].text), 0o755);
