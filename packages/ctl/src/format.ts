// Output for humans (aligned tables) and for programs (JSON, YAML). Pure.
import { stringify } from 'yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | undefined;
  align?: 'left' | 'right';
}

/** An aligned table: a header row, then one row per item; empty cells show as `-`. */
export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const cells = rows.map((r) => columns.map((c) => String(c.value(r) ?? '-') || '-'));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** `3d4h`, `2h13m`, `5m2s`, `42s` — the age style kubectl uses. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

export function formatPercent(used: number, total: number): string {
  if (total <= 0) return '-';
  return `${((100 * used) / total).toFixed(1)}%`;
}

/** Renders `data` as JSON or YAML, or calls `table` for the human form. */
export function render(format: OutputFormat, data: unknown, table: () => string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(data, null, 2);
    case 'yaml':
      return stringify(data).trimEnd();
    default:
      return table();
  }
}
