// CHECK's comparison: the plan (from the cached result) against what the kernel has, as a list of
// precise differences. Pure, so every difference is unit-tested without a kernel.
import type { ObservedAttachment } from './dataplane.js';
import type { AttachmentPlan, PlannedRoute } from './plan.js';

function routeText(r: PlannedRoute): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${r.scope ? ` scope ${r.scope}` : ''}`;
}

function sameRoute(a: PlannedRoute, b: PlannedRoute): boolean {
  return (
    a.dst === b.dst && (a.gw ?? '') === (b.gw ?? '') && (a.gw ? true : (a.scope ?? '') === (b.scope ?? ''))
  );
}

export function diffAttachment(plan: AttachmentPlan, seen: ObservedAttachment): string[] {
  const d: string[] = [];
  if (!seen.hostLink) {
    d.push(`host interface ${plan.hostIf} does not exist`);
  } else {
    if (seen.hostLink.mac.toLowerCase() !== plan.hostMac)
      d.push(`host interface ${plan.hostIf} has MAC ${seen.hostLink.mac}, expected ${plan.hostMac}`);
    if (seen.hostLink.mtu !== plan.mtu)
      d.push(`host interface ${plan.hostIf} has MTU ${seen.hostLink.mtu}, expected ${plan.mtu}`);
    if (!seen.hostLink.up) d.push(`host interface ${plan.hostIf} is down`);
  }
  for (const dst of plan.hostRoutes) {
    if (!seen.hostRoutes.includes(dst)) d.push(`host route ${dst} dev ${plan.hostIf} scope link is missing`);
  }
  for (const s of plan.hostSysctls) {
    const v = seen.hostSysctls[s.key];
    if (v !== undefined && v !== s.value)
      d.push(`host sysctl ${s.key.replaceAll('/', '.')} is ${v}, expected ${s.value}`);
  }
  if (!seen.netnsExists) {
    d.push(`network namespace ${plan.netns} does not exist`);
    return d;
  }
  if (!seen.podLink) {
    d.push(`pod interface ${plan.podIf} does not exist in ${plan.netns}`);
    return d;
  }
  if (seen.podLink.mtu !== plan.mtu)
    d.push(`pod interface ${plan.podIf} has MTU ${seen.podLink.mtu}, expected ${plan.mtu}`);
  if (!seen.podLink.up) d.push(`pod interface ${plan.podIf} is down`);
  for (const a of plan.podAddresses) {
    if (!seen.podAddresses.includes(a)) d.push(`pod interface ${plan.podIf} lacks address ${a}`);
  }
  for (const a of seen.podAddresses) {
    if (!plan.podAddresses.includes(a)) d.push(`pod interface ${plan.podIf} has unexpected address ${a}`);
  }
  for (const r of plan.podRoutes) {
    if (!seen.podRoutes.some((s) => sameRoute(r, s)))
      d.push(`pod route ${routeText(r)} dev ${plan.podIf} is missing`);
  }
  for (const n of plan.podNeighbours ?? []) {
    const seenN = seen.podNeighbours.find((x) => x.ip === n.ip);
    if (!seenN) d.push(`pod neighbour ${n.ip} lladdr ${n.lladdr} dev ${plan.podIf} is missing`);
    else if (!seenN.permanent || seenN.lladdr.toLowerCase() !== n.lladdr)
      d.push(
        `pod neighbour ${n.ip} dev ${plan.podIf} is ${seenN.lladdr || '(no lladdr)'}${seenN.permanent ? '' : ' (not permanent)'}, expected ${n.lladdr} permanent`,
      );
  }
  return d;
}
