// Label selectors for IPPool.nodeSelector and BGPPeer.nodeSelector/peerSelector: the Kubernetes
// syntax parsed by @podnet/k8s (the same parser that validates the resources), compiled once.
import { matchesSelector, parseSelector } from '@podnet/k8s';
import { AgentError } from './errors.js';

export type Labels = Record<string, string>;
export type Selector = (labels: Labels) => boolean;

const cache = new Map<string, Selector>();

/** Compiles a selector; throws AGENT_ERR_SELECTOR naming the selector and the problem. */
export function compileSelector(src: string | undefined): Selector {
  const s = (src ?? '').trim();
  const hit = cache.get(s);
  if (hit) return hit;
  let sel: Selector;
  try {
    const parsed = parseSelector(s);
    sel = (labels) => matchesSelector(parsed, labels);
  } catch (err) {
    throw new AgentError('AGENT_ERR_SELECTOR', (err as Error).message, { cause: err });
  }
  cache.set(s, sel);
  return sel;
}
