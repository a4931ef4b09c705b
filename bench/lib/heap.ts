/* Summarises V8 heap snapshots by constructor (self size and count), and the difference between two
 * snapshots divided by a count: what one more connection costs, object kind by object kind. */
import * as fs from 'node:fs';

export interface HeapClass {
  name: string;
  count: number;
  bytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function heapByClass(file: string): Map<string, HeapClass> {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const F = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, HeapClass>();
  for (let i = 0; i < snap.nodes.length; i += F) {
    const type = types[snap.nodes[i + iType]];
    let name: string;
    if (type === 'object' || type === 'closure') name = `${type === 'closure' ? 'closure ' : ''}${snap.strings[snap.nodes[i + iName]] || '(anonymous)'}`;
    else if (type === 'native' || type === 'hidden' || type === 'code') name = `(${type})`;
    else name = `(${type})`;
    const c = out.get(name) ?? { name, count: 0, bytes: 0 };
    c.count++;
    c.bytes += snap.nodes[i + iSize];
    out.set(name, c);
  }
  return out;
}

/** (after − before) / n per class, largest first (with `withShrunk`, classes that shrank too, for totals). */
export function heapDiffPer(
  before: Map<string, HeapClass>,
  after: Map<string, HeapClass>,
  n: number,
  top = 15,
  withShrunk = false,
): { name: string; countPer: number; bytesPer: number }[] {
  const rows: { name: string; countPer: number; bytesPer: number }[] = [];
  for (const name of new Set([...after.keys(), ...(withShrunk ? before.keys() : [])])) {
    const a = after.get(name) ?? { count: 0, bytes: 0 };
    const b = before.get(name) ?? { count: 0, bytes: 0 };
    const bytes = (a.bytes - b.bytes) / n;
    if (bytes <= 0 && !withShrunk) continue;
    rows.push({ name, countPer: Math.round(((a.count - b.count) / n) * 10) / 10, bytesPer: Math.round(bytes) });
  }
  return rows.sort((x, y) => y.bytesPer - x.bytesPer).slice(0, top);
}
