import { SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { TRACER_NAME } from './telemetry';

/**
 * Runs an async method inside an active span (a no-op span when tracing is off): database commands
 * it issues become its children (see DatabaseTracing). `attributes` reads the call's arguments,
 * `resultAttributes` its result (only when the span records).
 */
export function Traced(name: string, attributes?: (...args: any[]) => Attributes, resultAttributes?: (result: any) => Attributes) {
  return (_target: object, _key: string | symbol, descriptor: PropertyDescriptor): void => {
    const original = descriptor.value as (...args: unknown[]) => Promise<unknown>;
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      const tracer = trace.getTracer(TRACER_NAME);
      return tracer.startActiveSpan(name, { attributes: attributes?.(...args) }, async (span) => {
        try {
          const result = await original.apply(this, args);
          if (resultAttributes && span.isRecording()) span.setAttributes(resultAttributes(result));
          return result;
        } catch (e) {
          span.recordException(e as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
          throw e;
        } finally {
          span.end();
        }
      });
    };
  };
}
