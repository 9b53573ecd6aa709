// The `podnet-cni` executable as a script (bundled by esbuild, see scripts/bundle.mjs).
import { runCli } from './run-cli.js';

void runCli();
