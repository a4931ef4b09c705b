/* Output of a run: a table on stdout, <runId>.json (machine-readable), <runId>.md (Markdown tables)
 * and <runId>-fanout.svg (fan-out latency against subscriber count). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ScenarioResult } from './context';
import type { FanoutPoint } from '../scenarios/fanout';

export interface RunReport {
  tool: 'sync-server-bench';
  schemaVersion: 1;
  mode: string;
  date: string;
  startedAt: string;
  durationS: number;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGB: number;
    os: string;
    node: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
  };
  server: { commit: string; dirty: boolean; entry: string; env: Record<string, string> };
  database: { kind: string; uri: string };
  generator: { workers: number; client: string };
  options: Record<string, unknown>;
  scenarios: ScenarioResult[];
  files: { json: string; markdown: string; chart?: string };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

export function formatStdout(report: RunReport): string {
  const out: string[] = [];
  out.push(
    `\n=== sync server benchmark (${report.mode}) — ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGB} GB, Node ${report.machine.node}, ${report.database.kind}`,
  );
  for (const s of report.scenarios) {
    out.push(`\n--- ${s.title} [${s.name}] (${s.elapsedS} s)`);
    if (s.error) out.push(`  FAILED: ${s.error}`);
    if (s.rows.length) out.push(table(s.rows.map((r) => ['  ' + r.metric, String(r.value), r.unit ?? ''])));
    for (const n of s.notes) out.push(`  note: ${n}`);
  }
  return out.join('\n');
}

const esc = (s: string) => s.replace(/\|/g, '\\|');

export function formatMarkdown(report: RunReport): string {
  const m = report.machine;
  const out: string[] = [];
  out.push(`# Benchmark results — ${report.date} (${report.mode})`);
  out.push('');
  out.push(`- Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGB} GB RAM, ${m.os}, Node ${m.node}; load average at start ${m.loadAverageAtStart.join(' / ')}`);
  out.push(`- Database: ${report.database.kind}`);
  out.push(
    `- Server: commit ${report.server.commit}${report.server.dirty ? ' (with uncommitted changes)' : ''}, ${report.server.entry}, ${Object.entries(
      report.server.env,
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  out.push(`- Load generator: ${report.generator.workers} worker processes, ${report.generator.client}`);
  out.push(`- Command: \`${report.command}\` (${report.durationS} s)`);
  for (const s of report.scenarios) {
    out.push('');
    out.push(`## ${s.title}`);
    out.push('');
    if (s.error) out.push(`**Failed:** ${esc(s.error)}\n`);
    if (s.rows.length) {
      out.push('| Metric | Value |');
      out.push('|---|---:|');
      for (const r of s.rows) out.push(`| ${esc(r.metric)} | ${esc(String(r.value))}${r.unit ? ` ${r.unit}` : ''} |`);
    }
    for (const n of s.notes) out.push(`\n> ${esc(n)}`);
    for (const [phase, p] of Object.entries(s.phases ?? {})) {
      if (p.db?.length) {
        out.push(`\n<details><summary>${phase}: the server's database commands (--db-spy)</summary>\n`);
        out.push('| Command | Count | Total ms | Mean ms | Max ms |');
        out.push('|---|---:|---:|---:|---:|');
        for (const c of p.db) out.push(`| ${esc(c.command)} | ${c.count} | ${c.totalMs} | ${c.meanMs} | ${c.maxMs} |`);
        out.push('\n</details>');
      }
      if (p.profile) {
        out.push(`\n<details><summary>${phase}: server CPU profile (--profile): main thread busy ${p.profile.busyPct}% of ${p.profile.wallMs} ms</summary>\n`);
        out.push('| Self time (function) | ms | % of wall |');
        out.push('|---|---:|---:|');
        for (const e of p.profile.topFunctions.slice(0, 10)) out.push(`| ${esc(e.name)} | ${e.ms} | ${e.pct} |`);
        out.push('\n| Self time (origin) | ms | % of wall |');
        out.push('|---|---:|---:|');
        for (const e of p.profile.topOrigins.slice(0, 8)) out.push(`| ${esc(e.name)} | ${e.ms} | ${e.pct} |`);
        out.push('\n</details>');
      }
    }
  }
  if (report.files.chart) {
    out.push('');
    out.push(`![Fan-out latency against subscribers](${path.basename(report.files.chart)})`);
  }
  out.push('');
  return out.join('\n');
}

/** Fan-out latency (p50, p99; log scale) against subscriber count (log scale when it spans 10×). */
export function fanoutSvg(points: FanoutPoint[], title: string): string {
  const W = 720;
  const H = 420;
  const L = 70;
  const R = 150;
  const T = 50;
  const B = 60;
  const pw = W - L - R;
  const ph = H - T - B;
  const xs = points.map((p) => p.subscribers);
  const ys = points.flatMap((p) => [p.latencyMs.p50, p.latencyMs.p99, p.latencyMs.max, p.spreadMs?.p99 ?? 0]).filter((v) => v > 0);
  const xLog = Math.max(...xs) / Math.max(1, Math.min(...xs)) >= 10;
  const yMin = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...ys, 1))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys, 1) * 1.05));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const xPos = (x: number) => {
    if (xMax === xMin) return L + pw / 2;
    return xLog ? L + ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * pw : L + ((x - xMin) / (xMax - xMin)) * pw;
  };
  const yPos = (y: number) => T + ph - ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${L}" y="28" font-size="15" font-weight="bold">${title.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>`);
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > yMax * 1.0001 || v < yMin) continue;
      const y = yPos(v);
      parts.push(`<line x1="${L}" x2="${L + pw}" y1="${y}" y2="${y}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`);
      parts.push(`<text x="${L - 8}" y="${y + 4}" text-anchor="end" fill="#444">${v >= 1 ? v : v.toPrecision(1)}</text>`);
    }
  }
  for (const x of xs) {
    const px = xPos(x);
    parts.push(`<line x1="${px}" x2="${px}" y1="${T}" y2="${T + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${px}" y="${T + ph + 18}" text-anchor="middle" fill="#444">${x.toLocaleString('en-US')}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 15}" text-anchor="middle">subscribers${xLog ? ' (log scale)' : ''}</text>`);
  parts.push(`<text transform="translate(18 ${T + ph / 2}) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`);
  const series: [string, string, (p: FanoutPoint) => number, string][] = [
    ['p50', '#1f77b4', (p) => p.latencyMs.p50, ''],
    ['p99', '#d62728', (p) => p.latencyMs.p99, ''],
    ['max', '#999', (p) => p.latencyMs.max, ' stroke-dasharray="4 4"'],
    ['spread p99', '#2ca02c', (p) => p.spreadMs?.p99 ?? 0, ' stroke-dasharray="2 3"'],
  ];
  series.forEach(([name, color, get, dash], i) => {
    const pts = points.map((p) => `${xPos(p.subscribers).toFixed(1)},${yPos(get(p)).toFixed(1)}`);
    if (pts.length > 1) parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of points)
      parts.push(
        `<circle cx="${xPos(p.subscribers).toFixed(1)}" cy="${yPos(get(p)).toFixed(1)}" r="3.5" fill="${color}"><title>${name} ${get(p)} ms at ${p.subscribers} subscribers</title></circle>`,
      );
    const ly = T + 15 + i * 20;
    parts.push(`<line x1="${L + pw + 15}" x2="${L + pw + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${L + pw + 46}" y="${ly + 4}">${name}</text>`);
  });
  const sat = points.filter((p) => p.saturated);
  parts.push(
    `<text x="${L + pw + 15}" y="${T + 100}" fill="#555" font-size="10">latency: writer emit →</text><text x="${L + pw + 15}" y="${T + 113}" fill="#555" font-size="10">subscriber receipt;</text><text x="${L + pw + 15}" y="${T + 126}" fill="#555" font-size="10">spread: first → last</text><text x="${L + pw + 15}" y="${T + 139}" fill="#555" font-size="10">subscriber, per change</text>`,
  );
  if (sat.length)
    parts.push(
      `<text x="${L + pw + 15}" y="${T + 165}" fill="#a00">saturated at</text><text x="${L + pw + 15}" y="${T + 181}" fill="#a00">S = ${sat.map((p) => p.subscribers).join(', ')}</text>`,
    );
  parts.push('</svg>');
  return parts.join('\n');
}

export function writeReport(report: RunReport, dir: string, runId: string): RunReport {
  fs.mkdirSync(dir, { recursive: true });
  const fan = report.scenarios.find((s) => s.name === 'fanout' && !s.error);
  const points = (fan?.figures.points as FanoutPoint[] | undefined) ?? [];
  const files: RunReport['files'] = { json: path.join(dir, `${runId}.json`), markdown: path.join(dir, `${runId}.md`) };
  if (points.length) {
    files.chart = path.join(dir, `${runId}-fanout.svg`);
    const rate = points[0].targetRate;
    fs.writeFileSync(files.chart, fanoutSvg(points, `Fan-out latency, writer at ${rate} changes/s (${report.date}, ${report.mode})`));
  }
  const rel = (f?: string) => (f ? path.basename(f) : undefined);
  const final: RunReport = {
    ...report,
    files: { json: rel(files.json)!, markdown: rel(files.markdown)!, ...(files.chart ? { chart: rel(files.chart) } : {}) },
  };
  fs.writeFileSync(files.json, JSON.stringify(final, null, 2) + '\n');
  fs.writeFileSync(files.markdown, formatMarkdown({ ...final, files: { ...final.files, chart: files.chart } }));
  return { ...final, files };
}
