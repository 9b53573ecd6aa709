// `inet podnet` as nft lists it, for tests comparing two namespaces' tables.
import type { Netns } from '@podnet/testkit';

/**
 * `inet podnet` as nft lists it, in an order of its own: without handles (they number the history,
 * not the content), objects by kind and name (nft lists them in creation order), each chain's rules
 * in their order, set elements sorted.
 */
export async function tableListing(ns: Netns): Promise<string[]> {
  const items = (
    JSON.parse(await ns.run('nft', ['-j', 'list', 'table', 'inet', 'podnet'])) as {
      nftables: Record<string, Record<string, unknown>>[];
    }
  ).nftables.filter((i) => !('metainfo' in i));
  const key = (i: Record<string, Record<string, unknown>>) => {
    const [kind, o] = Object.entries(i)[0]!;
    return `${kind === 'rule' ? 'zrule' : kind} ${String(o.chain ?? o.name)}`;
  };
  return items
    .map((i) => ({ k: key(i), i }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ i }) =>
      JSON.stringify(i, (k, v) =>
        k === 'handle'
          ? undefined
          : k === 'elem' && Array.isArray(v)
            ? [...v].map((e) => JSON.stringify(e)).sort()
            : v,
      ),
    );
}
