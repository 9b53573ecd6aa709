// Runs one benchmark: `npm run bench -- <name>`. Each benchmark lives in bench/<name>.mjs (or .ts
// compiled into a package) and prints a table, then one JSON object as its last line.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.replace(/\.mjs$/, ''))
  .sort();
const name = process.argv[2];
if (!name || !available.includes(name)) {
  console.error(name ? `bench: no benchmark named "${name}"` : 'bench: name a benchmark');
  console.error(`usage: npm run bench -- <name>   (available: ${available.join(', ') || 'none yet'})`);
  process.exit(2);
}
const file = join(here, `${name}.mjs`);
if (!existsSync(file)) process.exit(2);
const r = spawnSync(process.execPath, [file, ...process.argv.slice(3)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
