import type { z } from 'zod/v4';
import { InvalidPayloadError } from '../errors';

/**
 * Parses a payload at the edge: the value when it fits the schema, else an `InvalidPayloadError`
 * with the message of the first problem (the schemas carry the protocol's messages).
 */
export function parsePayload<S extends z.ZodType>(schema: S, value: unknown, details: Record<string, unknown> = {}): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new InvalidPayloadError(issue?.message ?? 'invalid payload', details);
}
