import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { tracingRequested } from '../src/telemetry/telemetry';
import type { ClientChange } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';

const ROOT = path.join(__dirname, '..');

/** Runs a snippet in a fresh Node process (TypeScript through tsx) and returns its JSON output. */
function inFreshNode(code: string, env: Record<string, string> = {}): unknown {
  const out = execFileSync(process.execPath, ['--require', 'tsx/cjs', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

const SDK_LOADED = `Object.keys(require.cache).filter((k) => /@opentelemetry[\\\\/](sdk-|exporter-|resources)/.test(k)).length`;

describe('OpenTelemetry traces', () => {
  describe('when on (a tracer provider with the SDK in-memory exporter)', () => {
    let t: TestApp;
    let s: ClientSocket;
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

    beforeAll(async () => {
      provider.register();
      t = await startTestApp({ AUTH_MODE: 'dev' }, 'telemetry');
      s = await joinedClient(t.url, 'tracer');
    });
    afterAll(async () => {
      s?.close();
      await t?.close();
      await provider.shutdown();
      trace.disable();
    });

    it('a change batch is one span with its database round trips as children', async () => {
      exporter.reset();
      const changes: ClientChange[] = Array.from({ length: 4 }, (_, i) => ({
        operation: 'insert',
        collection: 'traced',
        documentId: `t-${i}-${Date.now()}`,
        data: { i },
      }));
      changes.push({ operation: 'insert', collection: '_sync_feed', documentId: 'refused' });
      const ack = await emitAck(s, 'sync:changeBatch', { changes });
      expect(ack).toMatchObject({ success: true, successCount: 4, failureCount: 1 });
      const applySpan = () => exporter.getFinishedSpans().find((sp) => sp.name === 'sync.apply' && sp.attributes['sync.changes'] === 5);
      await waitFor(() => !!applySpan(), 10_000, 'the sync.apply span');
      const apply = applySpan()!;
      expect(apply.attributes['sync.refused']).toBe(1);
      const parentOf = (sp: ReadableSpan) => sp.parentSpanContext?.spanId;
      const children = exporter.getFinishedSpans().filter((sp) => parentOf(sp) === apply.spanContext().spanId);
      const names = children.map((c) => c.name);
      // the documents' leases, the stored states, the write-ahead feed entries, the documents, the settle
      expect(names.length).toBeGreaterThanOrEqual(4);
      expect(names.every((n) => n.startsWith('mongodb.'))).toBe(true);
      expect(names).toEqual(expect.arrayContaining(['mongodb.insert', 'mongodb.find']));
      expect(children.some((c) => c.attributes['db.collection.name'] === '_sync_feed')).toBe(true);
      for (const c of children) {
        expect(c.spanContext().traceId).toBe(apply.spanContext().traceId);
        expect(c.attributes['db.system.name']).toBe('mongodb');
      }
      // a batch costs one span, not one per change
      expect(exporter.getFinishedSpans().filter((sp) => sp.name === 'sync.apply')).toHaveLength(1);
    });
  });

  describe('when off', () => {
    it('follows the standard variables', () => {
      expect(tracingRequested({})).toBe(false);
      expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
      expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
      expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
      expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces', OTEL_SDK_DISABLED: 'true' })).toBe(false);
    });

    it('loads no SDK, no exporter: the whole application with nothing set, then with OTLP on', () => {
      const off = inFreshNode(
        `require('./src/bootstrap'); const { startTelemetry, tracingActive } = require('./src/telemetry/telemetry');
         const on = startTelemetry(); console.log(JSON.stringify({ on, active: tracingActive(), sdk: ${SDK_LOADED} }));`,
      );
      expect(off).toEqual({ on: false, active: false, sdk: 0 });
      const on = inFreshNode(
        `const { startTelemetry, tracingActive, stopTelemetry } = require('./src/telemetry/telemetry');
         const on = startTelemetry(); const r = { on, active: tracingActive(), sdk: ${SDK_LOADED} > 0 };
         stopTelemetry().then(() => console.log(JSON.stringify(r)));`,
        { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
      );
      expect(on).toEqual({ on: true, active: true, sdk: true });
    }, 240_000);
  });
});
