/**
 * The AsyncAPI 3.0 document of the Socket.IO protocol, generated from the schemas in this folder
 * (`npm run docs:asyncapi` writes docs/asyncapi.json; the server serves it at /asyncapi.json).
 * Message payloads are JSON Schema draft-07 (AsyncAPI's default schema format is a superset of it).
 */
import * as z from 'zod/v4';
import { ErrorCode } from '../errors';
import { LIMITS } from '../types';
import { PROTOCOL_EVENTS } from './events.schemas';
import { FailureAckSchema } from './primitives';

const ERROR_TEXT: Record<ErrorCode, string> = {
  UNAUTHENTICATED: 'no valid identity: join first, or with a valid token',
  FORBIDDEN: 'a rule refuses it (write rule checked before conflict resolution; no current document given)',
  INVALID_PAYLOAD: 'the payload does not fit the schema (or a collection schema: then `details: { pointer, message }`)',
  INVALID_QUERY: 'a filter does not parse: `position` says where',
  CONFLICT: 'the change lost its conflict: `timestamp` and `current` (for a reader) say what won',
  RATE_LIMITED: 'too many changes: `retryAfterMs`',
  PAYLOAD_TOO_LARGE: `a change over MAX_CHANGE_BYTES (default ${LIMITS.defaultMaxChangeBytes}) or a batch over MAX_BATCH_SIZE (default ${LIMITS.defaultMaxBatchSize})`,
  CURSOR_EXPIRED: 'the cursor is older than the retention window: bootstrap again',
  UNAVAILABLE: 'the database is unreachable: nothing was written, retry',
  INTERNAL: 'an unexpected server error (no stack trace is ever sent)',
};

/** A key usable in `components` (AsyncAPI allows letters, digits, `.`, `-`, `_`). */
export const componentKey = (event: string) => event.replace(/[^A-Za-z0-9._-]/g, '.');

/** JSON Schemas of every schema with an id, keyed by id, with refs to `#/components/schemas/<id>`. */
export function protocolJsonSchemas(): Record<string, Record<string, unknown>> {
  // touch the catalogue so every schema is registered
  void PROTOCOL_EVENTS;
  void FailureAckSchema;
  const out = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Record<string, unknown>> };
  const schemas: Record<string, Record<string, unknown>> = {};
  for (const id of Object.keys(out.schemas).sort()) {
    const { $schema: _s, $id: _i, id: _id, ...rest } = out.schemas[id];
    schemas[id] = JSON.parse(JSON.stringify(rest).replaceAll('"#/components/schemas/__shared#/definitions/', '"#/components/schemas/'));
  }
  return schemas;
}

const idOf = (schema: z.ZodType): string => {
  const id = z.globalRegistry.get(schema)?.id;
  if (!id) throw new Error('every protocol schema has an id');
  return id;
};

export function buildAsyncApi(version = '1.0.0'): Record<string, unknown> {
  const schemas = protocolJsonSchemas();
  const messages: Record<string, unknown> = {};
  const channelMessages: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  for (const [event, spec] of Object.entries(PROTOCOL_EVENTS)) {
    const key = componentKey(event);
    messages[key] = {
      name: event,
      title: event,
      summary: spec.summary,
      payload: { $ref: `#/components/schemas/${idOf(spec.payload)}` },
    };
    channelMessages[key] = { $ref: `#/components/messages/${key}` };
    const op: Record<string, unknown> = {
      action: spec.direction,
      title: event,
      summary: spec.summary,
      channel: { $ref: '#/channels/socket' },
      messages: [{ $ref: `#/channels/socket/messages/${key}` }],
    };
    if (spec.ack) {
      const ackKey = `${key}.ack`;
      const codes = spec.errors ?? [];
      messages[ackKey] = {
        name: `${event} ack`,
        title: `${event} ack`,
        summary: `The answer to ${event}, through the Socket.IO ack callback`,
        description: codes.length
          ? `Failures are \`{ success: false, code, error }\` with code one of: ${codes.map((c) => `\`${c}\``).join(', ')}.`
          : 'This event never fails.',
        payload: codes.length
          ? { anyOf: [{ $ref: `#/components/schemas/${idOf(spec.ack)}` }, { $ref: '#/components/schemas/FailureAck' }] }
          : { $ref: `#/components/schemas/${idOf(spec.ack)}` },
        'x-error-codes': codes,
      };
      channelMessages[ackKey] = { $ref: `#/components/messages/${ackKey}` };
      op.reply = { channel: { $ref: '#/channels/socket' }, messages: [{ $ref: `#/channels/socket/messages/${ackKey}` }] };
    }
    operations[key] = op;
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Sync protocol (Socket.IO)',
      version,
      description: [
        'The sync protocol, version 1, between the sync server and its clients (docs/PROTOCOL.md). Generated from the zod schemas in libs/protocol/src/schemas: do not edit by hand (`npm run docs:asyncapi`).',
        '',
        'Transport: Socket.IO v4, namespace `/`, path `/socket.io`, websocket or polling. Every client event is request/response through the Socket.IO ack callback ("reply" below). Operations are described from the client\'s side: `send` is client → server, `receive` is server → client.',
        '',
        'Error codes of `{ success: false, code, error }`:',
        ...Object.values(ErrorCode).map((c) => `- \`${c}\`: ${ERROR_TEXT[c]}`),
      ].join('\n'),
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      default: {
        host: 'localhost:3000',
        protocol: 'ws',
        pathname: '/socket.io',
        description:
          'Socket.IO v4 endpoint of a sync server (same port as the REST API). Authenticate with a JWT in handshake.auth.token, the Authorization header, or sync:join.',
      },
    },
    channels: {
      socket: {
        address: '/',
        title: 'Default namespace',
        description: 'The Socket.IO default namespace; the event name is the message name.',
        messages: channelMessages,
      },
    },
    operations,
    components: { schemas, messages },
  };
}
