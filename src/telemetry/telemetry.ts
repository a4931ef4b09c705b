/**
 * OpenTelemetry traces, off by default. On with the standard variables: `OTEL_TRACES_EXPORTER=otlp`
 * (or `console`), or an `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
 * `OTEL_SDK_DISABLED=true` wins. The exporter reads the other `OTEL_*` variables itself (headers,
 * protocol, timeout), and `OTEL_SERVICE_NAME` names the service (default `sync-server`).
 *
 * Only `@opentelemetry/api` (a no-op without a registered provider) is imported by the rest of the
 * code; the SDK and the exporter are required here, and only when tracing is on.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';

export const TRACER_NAME = 'sync-server';

/** True when the environment asks for traces (the standard OTEL_* variables). */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.length) return !exporters.every((e) => e === 'none');
  return !!(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** True when a tracer provider that records is registered (by startTelemetry, or by the embedding app). */
export function tracingActive(): boolean {
  // never ended, so never exported: a probe, not a trace
  const span = trace.getTracer(TRACER_NAME).startSpan('probe');
  return isSpanContextValid(span.spanContext());
}

let shutdown: (() => Promise<void>) | undefined;

/**
 * Registers a tracer provider with a batch OTLP (or console) exporter when the environment asks for
 * it. Call once, before the application is created (main.ts). Returns whether tracing is on.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): boolean {
  if (shutdown || !tracingRequested(env)) return !!shutdown;
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeTracerProvider, BatchSpanProcessor, ConsoleSpanExporter } =
    require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const kinds = (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((s) => s.trim().toLowerCase());
  const processors = [];
  if (kinds.includes('console')) processors.push(new BatchSpanProcessor(new ConsoleSpanExporter()));
  if (kinds.includes('otlp') || kinds.every((k) => k === '')) {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || TRACER_NAME }),
    spanProcessors: processors,
  });
  provider.register();
  shutdown = () => provider.shutdown();
  return true;
}

/** Flushes and stops the provider startTelemetry registered (on shutdown). */
export async function stopTelemetry(): Promise<void> {
  const s = shutdown;
  shutdown = undefined;
  // an exporter that cannot deliver the last spans must not fail the shutdown
  await s?.().catch(() => undefined);
}
