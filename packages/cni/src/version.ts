// CNI specification versions this plugin speaks, and what each allows.
import { CniError, CniErrorCode } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const CURRENT_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares two dotted versions numerically: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The minimum spec version that defines each command (CHECK came in 0.4.0, STATUS and GC in 1.1.0). */
export const MIN_VERSION_FOR: Record<string, CniVersion> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

export function requireVersionFor(command: string, cniVersion: string): void {
  const min = MIN_VERSION_FOR[command];
  if (min && compareVersions(cniVersion, min) < 0) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `cniVersion ${cniVersion} does not define ${command}: it needs ${min} or later`,
    );
  }
}

/** The VERSION command's answer (SPEC.md "VERSION"). */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
