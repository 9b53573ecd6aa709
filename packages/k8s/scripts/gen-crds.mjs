// Writes deploy/crds/ from the zod schemas (run after the build: `npm run gen:crds -w @podnet/k8s`).
// src/crd.test.ts fails when the checked-in files differ from what this writes.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '../dist/crd.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy/crds');
const files = renderCrdFiles();
for (const f of readdirSync(dir)) {
  if (f.endsWith('.yaml') && !files.has(f)) rmSync(join(dir, f));
}
for (const [name, text] of files) writeFileSync(join(dir, name), text);
console.log(`wrote ${files.size} files to ${dir}`);
