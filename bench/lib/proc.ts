/* CPU time and resident memory of processes from /proc (Linux), to tell which process was busy:
 * the server, the database, or the load generator. Elsewhere the figures are simply absent. */
import * as fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every mainstream Linux build

/** CPU seconds (user + system) the process has used, or null when unknown. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** Measures the share of one core each group of processes used between start() and stop(). */
export class CpuMeter {
  private start0 = new Map<string, number>();
  private t0 = 0;

  constructor(private readonly groups: () => Record<string, (number | undefined)[]>) {}

  start(): void {
    this.t0 = performance.now();
    this.start0.clear();
    for (const [name, pids] of Object.entries(this.groups())) this.start0.set(name, this.total(pids));
  }

  /** Percent of one core per group (200 = two cores busy). */
  stop(): Record<string, number> {
    const secs = (performance.now() - this.t0) / 1000;
    const out: Record<string, number> = {};
    for (const [name, pids] of Object.entries(this.groups())) {
      const before = this.start0.get(name);
      if (before === undefined || secs <= 0) continue;
      out[name] = Math.round(((this.total(pids) - before) / secs) * 100);
    }
    return out;
  }

  private total(pids: (number | undefined)[]): number {
    let s = 0;
    for (const p of pids) s += cpuSeconds(p) ?? 0;
    return s;
  }
}
