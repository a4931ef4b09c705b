/**
 * What the client accepts from a server, parsed with the protocol's own schemas (the server checks
 * what it receives with the same ones): the answer to each request the client makes, and each event
 * the server pushes. A malformed message is reported (an `error` event, code INVALID_SERVER_MESSAGE)
 * and never crashed on: an answer is then handled as an INTERNAL failure (retried with backoff), a
 * pushed event is dropped. Failure codes stay open: a newer server may answer with a code this
 * client does not know (the uploader retries those a few times, then takes them as refusals).
 */
import * as z from 'zod/v4';
import { ErrorCode } from '../../protocol/src/errors';
import {
  BootstrapPageSchema,
  ChangeAckFailureSchema,
  ChangeAckSuccessSchema,
  ChangeBatchAckSchema,
  DeliveredChangeSchema,
  FailureAckSchema,
  GetChangesAckSchema,
  JoinAckSchema,
  ShutdownNoticeSchema,
  SubscribeAckSchema,
  SyncErrorEventSchema,
  UnsubscribeAckSchema,
} from '../../protocol/src/schemas';
import type { ClientToServerEvents, EventRequest } from '../../protocol/src/types';
import { SyncClientError } from './client-types';

export const INVALID_SERVER_MESSAGE = 'INVALID_SERVER_MESSAGE';

const Failure = FailureAckSchema.extend({ code: z.string() });
const ChangeAck = z.union([ChangeAckSuccessSchema, ChangeAckFailureSchema.extend({ code: z.string() })]);

/** The answer of each request the client makes: the server's success schema, or a failure. */
const ANSWERS = {
  'sync:join': z.union([JoinAckSchema, Failure]),
  'sync:subscribe': z.union([SubscribeAckSchema, Failure]),
  'sync:unsubscribe': z.union([UnsubscribeAckSchema, Failure]),
  'sync:changeBatch': z.union([ChangeBatchAckSchema.extend({ results: z.array(ChangeAck) }), Failure]),
  'sync:get_changes': z.union([GetChangesAckSchema, Failure]),
} satisfies Partial<Record<keyof ClientToServerEvents, z.ZodType>>;

/** The events the client sends with an ack. */
export type RequestEvent = keyof typeof ANSWERS;
/** What the client sends with `event` (the protocol's event map). */
export type RequestOf<E extends RequestEvent> = EventRequest<E>;
/** The answer to `event`, as parsed. */
export type AnswerOf<E extends RequestEvent> = z.output<(typeof ANSWERS)[E]>;
/** Sends a request and resolves with its parsed answer (the connection's `request`). */
export type Requester = <E extends RequestEvent>(event: E, payload: RequestOf<E>) => Promise<AnswerOf<E>>;
export type FailureAnswer = z.output<typeof Failure>;
export type ChangeAnswer = z.output<typeof ChangeAck>;
export type DeliveredChangeIn = z.output<typeof DeliveredChangeSchema>;
export type BootstrapPageIn = z.output<typeof BootstrapPageSchema>;

/** The first problem of a failed parse, as "path: message" (at most 200 characters). */
function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue?.path.length ? `${issue.path.map(String).join('.')}: ` : '';
  return `${where}${issue?.message ?? 'invalid'}`.slice(0, 200);
}

/** Reports a malformed server message (`report` is the client's error event). */
function malformed(report: (e: SyncClientError) => void, what: string, error: z.ZodError): string {
  const message = `malformed ${what} from the server: ${describe(error)}`;
  report(new SyncClientError(INVALID_SERVER_MESSAGE, message));
  return message;
}

/** Parses the answer to `event`; a malformed one is reported and becomes an INTERNAL failure. */
export function readAnswer<E extends RequestEvent>(event: E, raw: unknown, report: (e: SyncClientError) => void): AnswerOf<E> {
  const r = ANSWERS[event].safeParse(raw);
  if (r.success) return r.data as AnswerOf<E>;
  const failure: FailureAnswer = { success: false, code: ErrorCode.INTERNAL, error: malformed(report, `answer to ${event}`, r.error) };
  return failure as AnswerOf<E>;
}

/** The well-formed changes of a `sync:changes` event (an array, or one change); the others are reported. */
export function readChanges(raw: unknown, report: (e: SyncClientError) => void): DeliveredChangeIn[] {
  const list: unknown[] = Array.isArray(raw) ? raw : [raw];
  const out: DeliveredChangeIn[] = [];
  for (const item of list) {
    const r = DeliveredChangeSchema.safeParse(item);
    if (r.success) out.push(r.data);
    else malformed(report, 'sync:changes item', r.error);
  }
  return out;
}

/** A pushed event's payload, or undefined (reported) when malformed. */
function readEvent<S extends z.ZodType>(schema: S, what: string, raw: unknown, report: (e: SyncClientError) => void): z.output<S> | undefined {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  malformed(report, what, r.error);
  return undefined;
}

export const readBootstrapPage = (raw: unknown, report: (e: SyncClientError) => void) => readEvent(BootstrapPageSchema, 'sync:bootstrap page', raw, report);
export const readSyncError = (raw: unknown, report: (e: SyncClientError) => void) => readEvent(SyncErrorEventSchema, 'sync:error notice', raw, report);
export const readShutdownNotice = (raw: unknown, report: (e: SyncClientError) => void) =>
  readEvent(ShutdownNoticeSchema, 'sync:shutdown notice', raw ?? {}, report);
