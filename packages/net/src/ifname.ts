// The host side of a pod's veth: the one name the CNI plugin creates, and the name the agent and
// the NetworkPolicy translation key their per-pod state on.
import { createHash } from 'node:crypto';

/** Every pod interface on the host starts with this. */
export const POD_IF_PREFIX = 'pn';

/** `pn` + 11 hex characters of sha1("namespace.pod"): the host interface of the pod's eth0. */
export function podInterfaceName(namespace: string, pod: string): string {
  return POD_IF_PREFIX + createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11);
}
