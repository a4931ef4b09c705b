import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { LIMITS } from '@sync/protocol';
import { PACKAGE_VERSION } from './api-docs';

/** Who may call which route (routes of other modules are described here, so their files stay as they are). */
const SECURITY: Record<string, { security: Record<string, string[]>[]; summary: string }> = {
  'GET /health': { security: [], summary: 'Liveness: the process answers (never touches the database)' },
  'GET /ready': { security: [], summary: 'Readiness: 503 while the database is unreachable' },
  'GET /stats': { security: [{ admin: [] }, { service: [] }], summary: 'Counters and the cluster state (admin-only in production)' },
  'GET /metrics': { security: [{ admin: [] }, { service: [] }], summary: 'Prometheus text format (admin-only in production)' },
  'POST /api/changes': { security: [{ service: [] }, { admin: [] }], summary: 'Server-to-server ingest: the same acks and broadcasts as sync:changeBatch' },
  'GET /api/negotiate': { security: [{ user: [] }], summary: 'An Azure Web PubSub client URL and token for the caller' },
};

const CHANGE_BATCH_BODY = {
  type: 'object',
  required: ['changes'],
  properties: {
    changes: {
      type: 'array',
      maxItems: LIMITS.defaultMaxBatchSize,
      description: 'At most MAX_BATCH_SIZE changes (default 500), each as in /asyncapi.json#/components/schemas/ClientChange',
      items: {
        type: 'object',
        required: ['operation', 'documentId'],
        properties: {
          changeId: { type: 'string', maxLength: LIMITS.changeIdMax, description: 'aliases id, patchId' },
          operation: { type: 'string', enum: ['insert', 'update', 'delete'] },
          collection: { type: 'string', maxLength: LIMITS.collectionNameMax, pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'alias collectionName' },
          documentId: { type: 'string', minLength: 1, maxLength: LIMITS.documentIdMax },
          data: { type: 'object', additionalProperties: true },
          timestamp: { type: 'number', minimum: 0 },
        },
      },
    },
  },
};

/** The OpenAPI document of every REST route, with the admin, service-token and user security schemes. */
export function buildOpenApi(app: INestApplication, version: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Sync server REST API')
    .setDescription(
      'REST endpoints of the sync server. The real-time protocol (Socket.IO) is described by the AsyncAPI document at /asyncapi.json. ' +
        'Errors are JSON `{ statusCode, message }`; bad input is a 4xx, never a 500.',
    )
    .setVersion(version)
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a JWT of an admin (ADMIN_USER_IDS or an admin claim)' }, 'admin')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'the service token (AUTH_SERVICE_TOKEN)' }, 'service')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "a user's JWT" }, 'user')
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item) as [string, Record<string, unknown>][]) {
      const known = SECURITY[`${method.toUpperCase()} ${path}`];
      if (!known) continue;
      op.security = known.security;
      op.summary ??= known.summary;
      if (path === '/api/changes') {
        op.requestBody = { required: true, content: { 'application/json': { schema: CHANGE_BATCH_BODY } } };
        op.responses = {
          200: { description: '`{ success: true, results, successCount, failureCount }`, or a failure ack `{ success: false, code, error }`' },
          401: { description: 'no or invalid service token' },
          403: { description: 'an authenticated caller that is neither the service nor an admin' },
        };
      }
    }
  }
  return doc;
}

/** Serves the document at /docs-json and its UI at /docs (API_DOCS=false turns both off). */
export function setupOpenApi(app: INestApplication, version = PACKAGE_VERSION): void {
  SwaggerModule.setup('docs', app, () => buildOpenApi(app, version), { jsonDocumentUrl: 'docs-json', yamlDocumentUrl: 'docs-yaml' });
}
