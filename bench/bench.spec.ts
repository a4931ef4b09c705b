/* Smoke test of the benchmark harness: runs a tiny configuration (--smoke) end to end — embedded
 * database, the server in its own process, worker processes — and checks that it writes a
 * well-formed result. No timing assertions: the figures themselves are the harness's business. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const FERRETDB = path.join(ROOT, '.tools', 'bin', 'ferretdb');
const SCENARIOS = ['write', 'singles', 'dblimit', 'fanout', 'connections', 'catchup'];

const runIf = fs.existsSync(FERRETDB) || process.env.MONGODB_URI ? it : it.skip;

describe('bench harness (smoke)', () => {
  let out: string;
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  });
  afterAll(() => {
    fs.rmSync(out, { recursive: true, force: true });
  });

  runIf(
    'runs every scenario in a tiny configuration and writes JSON, Markdown and an SVG chart',
    () => {
      const args = ['bench/run.ts', '--smoke', `--out=${out}`, ...(process.env.MONGODB_URI ? [`--mongodb-uri=${process.env.MONGODB_URI}`] : [])];
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), args, { cwd: ROOT, env, encoding: 'utf8', timeout: 85_000 });
      const output = `${r.stdout}\n${r.stderr}`.slice(-4000);
      // 0: all scenarios ran; 1: a scenario failed (checked below); anything else: the harness broke
      expect({ status: r.status, signal: r.signal, output }).toMatchObject({ status: expect.any(Number), signal: null });
      expect([0, 1]).toContain(r.status);

      const files = fs.readdirSync(out);
      const json = files.find((f) => /^\d{4}-\d{2}-\d{2}-smoke\.json$/.test(f));
      expect(json).toBeDefined();
      expect(files).toContain(json!.replace(/\.json$/, '.md'));
      const svg = files.find((f) => f.endsWith('-fanout.svg'));
      expect(svg).toBeDefined();
      expect(fs.readFileSync(path.join(out, svg!), 'utf8')).toMatch(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>$/);

      const report = JSON.parse(fs.readFileSync(path.join(out, json!), 'utf8'));
      expect(report).toMatchObject({
        tool: 'sync-server-bench',
        schemaVersion: 1,
        mode: 'smoke',
        machine: { cpus: expect.any(Number), memoryGB: expect.any(Number), node: process.version },
        database: { kind: expect.any(String) },
        files: { json, markdown: json!.replace(/\.json$/, '.md'), chart: svg },
      });
      expect(report.scenarios.map((s: { name: string }) => s.name)).toEqual(SCENARIOS);
      for (const s of report.scenarios) {
        expect(typeof s.title).toBe('string');
        expect(Array.isArray(s.rows)).toBe(true);
        if (s.error) {
          // the harness reports a server crash as a failed scenario; anything else is a harness bug
          expect({ scenario: s.name, error: s.error, notes: s.notes }).toMatchObject({
            notes: expect.arrayContaining([expect.stringMatching(/the server process died/)]),
          });
          console.warn(`bench smoke: scenario ${s.name} failed because the server died: ${s.notes[0]}`);
          continue;
        }
        expect(s.rows.length).toBeGreaterThan(0);
        for (const row of s.rows) expect(row).toMatchObject({ metric: expect.any(String), value: expect.anything() });
      }
      const write = report.scenarios.find((s: { name: string }) => s.name === 'write');
      if (!write.error) {
        expect(write.figures.batch.changesPerS).toEqual(expect.any(Number));
        expect(write.figures.batch.ackLatencyMs).toMatchObject({ p50: expect.any(Number), p99: expect.any(Number) });
      }
      const fan = report.scenarios.find((s: { name: string }) => s.name === 'fanout');
      if (!fan.error) expect(fan.figures.points.map((p: { subscribers: number }) => p.subscribers)).toEqual([2, 4]);
      const conn = report.scenarios.find((s: { name: string }) => s.name === 'connections');
      if (!conn.error) expect(conn.figures.steps[conn.figures.steps.length - 1].connections).toBe(20);
      const md = fs.readFileSync(path.join(out, report.files.markdown), 'utf8');
      expect(md).toContain('| Metric | Value |');
    },
    90_000,
  );
});
