#!/usr/bin/env node
// podnetctl: node status, routes, IPAM. See `podnetctl --help`.
import { runCtl } from './cli-main.js';

const code = await runCtl(process.argv.slice(2), {
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
process.exitCode = code;
