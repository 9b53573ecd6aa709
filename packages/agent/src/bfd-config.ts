// BFD settings of a session, layered: the BGPPeer's own `bfd`, then the node's BGPConfiguration
// (node.<name>), then the default one, then the built-in defaults (300 ms x 3, off).
import type { BfdView, DesiredBfd } from './model.js';

export const DEFAULT_BFD = { minTx: 300, minRx: 300, multiplier: 3, controlPlaneCheck: false } as const;

/** The BFD a session runs, or undefined when no layer enables it. `layers` go from the most specific. */
export function resolveBfd(...layers: (BfdView | undefined)[]): DesiredBfd | undefined {
  const pick = <K extends keyof BfdView>(k: K): BfdView[K] => {
    for (const l of layers) if (l?.[k] !== undefined) return l[k];
    return undefined;
  };
  if (pick('enabled') !== true) return undefined;
  return {
    minTx: pick('minTx') ?? DEFAULT_BFD.minTx,
    minRx: pick('minRx') ?? DEFAULT_BFD.minRx,
    multiplier: pick('multiplier') ?? DEFAULT_BFD.multiplier,
    controlPlaneCheck: pick('controlPlaneCheck') ?? DEFAULT_BFD.controlPlaneCheck,
  };
}
