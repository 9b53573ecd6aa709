// The native addon's typed surface. Everything here is a thin wrapper over one syscall family.
import { createRequire } from 'node:module';

export interface AddonInfo {
  napiVersion: number;
}

interface Binding {
  addonInfo(): AddonInfo;
}

const require = createRequire(import.meta.url);
const binding = require('../build/Release/podnet_native.node') as Binding;

export function addonInfo(): AddonInfo {
  return binding.addonInfo();
}
