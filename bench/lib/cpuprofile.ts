/* Summarises a V8 .cpuprofile (from `node --cpu-prof` or the harness's --profile): where the samples
 * fell, by function (self time) and by origin (a package of node_modules, a file of src/, Node's
 * internals, the garbage collector, idle). */
import * as fs from 'node:fs';
import * as path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  name: string;
  ms: number;
  /** Percent of the profiled wall time. */
  pct: number;
}

export interface ProfileSummary {
  wallMs: number;
  /** Time the main thread was busy (not idle), ms and percent of wall time. */
  busyMs: number;
  busyPct: number;
  topFunctions: ProfileEntry[];
  topOrigins: ProfileEntry[];
}

/** Where a frame's code lives: a package, a file of the project, a Node internal, or a V8 pseudo-frame. */
export function originOf(url: string, functionName: string, root: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith('node:')) return 'node:' + (u.slice(5).split('/')[0] || 'internal');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (u.startsWith(root)) u = path.relative(root, u);
  return u;
}

export function summarizeProfile(profile: CpuProfile, root = process.cwd(), top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // the delta before sample i+1 is the time spent in sample i
    const dt = (deltas[i + 1] ?? 0) / 1000;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  const fn = new Map<string, number>();
  const origin = new Map<string, number>();
  let idle = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') {
      idle += ms;
      continue;
    }
    const o = originOf(cf.url, cf.functionName, root);
    const name = `${cf.functionName || '(anonymous)'}${cf.url ? ` ${o}${o.includes('/') || o.endsWith('.ts') || o.endsWith('.js') ? `:${cf.lineNumber + 1}` : ''}` : ''}`;
    fn.set(name, (fn.get(name) ?? 0) + ms);
    origin.set(o, (origin.get(o) ?? 0) + ms);
  }
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), pct: wallMs ? Math.round((ms / wallMs) * 1000) / 10 : 0 }));
  const busyMs = Math.max(0, wallMs - idle);
  return {
    wallMs: Math.round(wallMs),
    busyMs: Math.round(busyMs),
    busyPct: wallMs ? Math.round((busyMs / wallMs) * 1000) / 10 : 0,
    topFunctions: rank(fn),
    topOrigins: rank(origin),
  };
}

export function summarizeProfileFile(file: string, root = process.cwd(), top = 15): ProfileSummary {
  return summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, root, top);
}

export function formatProfileSummary(s: ProfileSummary): string {
  const lines = [`wall ${s.wallMs} ms, main thread busy ${s.busyMs} ms (${s.busyPct}%)`, '  top self time by function:'];
  for (const e of s.topFunctions) lines.push(`    ${String(e.pct).padStart(5)}%  ${String(e.ms).padStart(7)} ms  ${e.name}`);
  lines.push('  by origin:');
  for (const e of s.topOrigins) lines.push(`    ${String(e.pct).padStart(5)}%  ${String(e.ms).padStart(7)} ms  ${e.name}`);
  return lines.join('\n');
}
