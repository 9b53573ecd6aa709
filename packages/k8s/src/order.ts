// Sort orders for names and strings the agent and IPAM sort to be deterministic.
//
// String.prototype.localeCompare goes through ICU's collation, whose data Node keeps in its binary:
// the first call maps about 2 MB of it into the process (measured with a bare `node -e`), for an
// order nobody reads. Kubernetes names, CIDRs, interface names and RFC 3339 timestamps compare as
// well by UTF-16 code unit, the same on every machine whatever its locale.

/** Code-unit order of two strings (what `<` does), as a sort comparator. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
