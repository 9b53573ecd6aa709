// What the build scripts that bundle with esbuild share: this package's (bundle.mjs, shim.mjs) and
// @podnet/agent's (scripts/bundle.mjs, which depends on this package's build).
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * Replaces a file atomically (temp file + rename), and only when its content changes: processes
 * started from these files may be running while another build happens (several engineers and CI
 * share a machine), and rewriting a loaded addon or bundle in place can crash them (SIGBUS on a
 * truncated mapping, a torn script).
 */
export function publish(path, contents, mode = 0o644) {
  const data = Buffer.from(contents);
  if (existsSync(path) && readFileSync(path).equals(data)) return;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

// zod exports its error messages in ~50 languages (z.locales) and every one of them is evaluated
// when zod loads; podnet speaks English only (zod's default, imported by zod itself from en.js).
// Keeping just that one makes a bundle smaller and its heap lighter.
export const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: 'export { default as en } from "./en.js";',
      loader: 'js',
    }));
  },
};

/**
 * An esbuild plugin that replaces `from` by `to` in the module whose path matches `filter`; the
 * build fails if `from` is not there (the module changed under the patch).
 */
export function patch(name, filter, from, to) {
  return {
    name,
    setup(b) {
      b.onLoad({ filter }, async (args) => {
        const src = await readFile(args.path, 'utf8');
        if (!src.includes(from))
          throw new Error(`${args.path}: ${JSON.stringify(from)} (to patch) not found`);
        return { contents: src.replace(from, to), loader: 'js' };
      });
    },
  };
}
