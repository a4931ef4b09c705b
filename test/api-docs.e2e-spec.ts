import * as fs from 'node:fs';
import * as path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Parser } from '@asyncapi/parser';
import Ajv, { ValidateFunction } from 'ajv';
import request from 'supertest';
import { asyncApiJson } from '../src/console/api-docs';
import { collectEvents, emitAck, joinedClient, startTestApp, TestApp, emitUntyped, ClientSocket, CLIENT_EVENTS } from './support/app';

/** The routes Express has registered (method + OpenAPI-style path), without the docs' own. */
function registeredRoutes(t: TestApp): string[] {
  const express = t.app.getHttpAdapter().getInstance() as { router?: { stack: unknown[] }; _router?: { stack: unknown[] } };
  const stack = (express.router ?? express._router)!.stack as { route?: { path: string; methods: Record<string, boolean> } }[];
  const out = new Set<string>();
  for (const layer of stack) {
    if (!layer.route || typeof layer.route.path !== 'string') continue;
    const p = layer.route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    // the docs' own routes, and Nest's catch-all 404 handler
    if (p.startsWith('/docs') || p === '/{*path}') continue;
    for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') out.add(`${m.toUpperCase()} ${p}`);
  }
  return [...out].sort();
}

describe('API documents: AsyncAPI (Socket.IO) and OpenAPI (REST)', () => {
  let t: TestApp;
  let s: ClientSocket;
  let seq = 0;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'apidocs');
    s = await joinedClient(t.url, 'doc-writer');
  });
  afterAll(async () => {
    s?.close();
    await t?.close();
  });

  describe('AsyncAPI', () => {
    let doc: Record<string, any>;
    let ajv: Ajv;
    const validator = (id: string): ValidateFunction => ajv.getSchema(`asyncapi#/components/schemas/${id}`)!;
    /** The payload schema of an ack message, e.g. `sync.change.ack`. */
    const ackValidator = (key: string): ValidateFunction => ajv.getSchema(`asyncapi#/components/messages/${key}/payload`)!;

    beforeAll(async () => {
      const res = await request(t.url).get('/asyncapi.json').expect(200);
      doc = JSON.parse(res.text);
      ajv = new Ajv({ strict: false, allErrors: false });
      ajv.addSchema({ $id: 'asyncapi', components: { schemas: doc.components.schemas, messages: doc.components.messages } });
    });

    it('is served at /asyncapi.json, equals the committed docs/asyncapi.json and a fresh generation', async () => {
      const res = await request(t.url).get('/asyncapi.json').expect(200);
      const committed = fs.readFileSync(path.join(__dirname, '..', 'docs', 'asyncapi.json'), 'utf8');
      expect(res.text).toBe(asyncApiJson());
      expect(committed).toBe(asyncApiJson());
    });

    it('parses with the official parser without errors or warnings', async () => {
      const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc));
      const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join('/')}`);
      expect(problems).toEqual([]);
      expect(document).toBeDefined();
      expect(document!.version()).toBe('3.0.0');
    });

    it('describes every event of the protocol, each client event with its ack and error codes', () => {
      const names = Object.values(doc.components.messages as Record<string, { name: string }>).map((m) => m.name);
      for (const ev of CLIENT_EVENTS) expect(names).toEqual(expect.arrayContaining([ev, `${ev} ack`]));
      for (const ev of ['sync:changes', 'sync:bootstrap', 'sync:token_expired']) expect(names).toContain(ev);
      expect(doc.components.schemas.ErrorCode.enum).toEqual(
        expect.arrayContaining([
          'UNAUTHENTICATED',
          'FORBIDDEN',
          'INVALID_PAYLOAD',
          'INVALID_QUERY',
          'CONFLICT',
          'RATE_LIMITED',
          'PAYLOAD_TOO_LARGE',
          'CURSOR_EXPIRED',
          'UNAVAILABLE',
          'INTERNAL',
        ]),
      );
      expect(doc.operations['sync.change'].reply).toBeDefined();
    });

    it('agrees with the gateway: a sync:change is refused as INVALID_PAYLOAD exactly when the document says it is invalid', async () => {
      const ok = () => ({ changeId: `agree-${++seq}`, operation: 'insert', collection: 'agree', documentId: `d-${seq}`, data: { title: 'x' } });
      const cases: Record<string, unknown>[] = [
        ok(),
        { ...ok(), collection: undefined, collectionName: 'agree' },
        { ...ok(), changeId: undefined, id: `alias-${seq}` },
        { ...ok(), timestamp: 12 },
        { ...ok(), operation: 'delete', data: { $set: 1 } },
        { ...ok(), operation: 'upsert' },
        { ...ok(), collection: '_sync_feed' },
        { ...ok(), collection: 'system.users' },
        { ...ok(), collection: 'a/b' },
        { ...ok(), collection: undefined },
        { ...ok(), documentId: '' },
        { ...ok(), documentId: 'd'.repeat(257) },
        { ...ok(), documentId: 42 },
        { ...ok(), changeId: '' },
        { ...ok(), changeId: 5 },
        { ...ok(), data: 'text' },
        { ...ok(), data: [1, 2] },
        { ...ok(), data: { $where: 'x' } },
        { ...ok(), data: { 'a.b': 1 } },
        { ...ok(), data: { 'a\\b': 1 } },
        { ...ok(), timestamp: -1 },
        { ...ok(), timestamp: '12' },
      ];
      const validate = validator('ClientChange');
      const validAck = ackValidator('sync.change.ack');
      for (const c of cases) {
        const json = JSON.parse(JSON.stringify(c));
        const valid = validate(json) as boolean;
        const ack = await emitAck(s, 'sync:change', json);
        expect({ ack, errors: validAck(ack) ? null : validAck.errors }).toEqual({ ack, errors: null });
        if (valid) expect({ c: json, ack }).toMatchObject({ ack: { success: true } });
        else expect({ c: json, ack }).toMatchObject({ ack: { success: false, code: 'INVALID_PAYLOAD' } });
      }
    });

    it('agrees with the gateway on the other events (batch, subscriptions, get_changes)', async () => {
      const batch = validator('ChangeBatchRequest');
      for (const body of [{ changes: [] }, { changes: 'x' }, {}, { changes: { 0: 1 } }]) {
        const ack = await emitUntyped(s, 'sync:changeBatch', body);
        expect(ackValidator('sync.changeBatch.ack')(ack)).toBe(true);
        expect({ body, success: ack.success }).toEqual({ body, success: batch(body) as boolean });
        if (!ack.success) expect(ack.code).toBe('INVALID_PAYLOAD');
      }
      const subscribe = validator('SubscribeRequest');
      for (const body of [
        { collection: 'agree' },
        { collection: 'agree', filter: 'title == $0', args: ['x'], bootstrap: false },
        { collection: 5 },
        { collection: '_sync_feed' },
        { collection: 'agree', filter: 5 },
        { collection: 'agree', args: 'x' },
        { collection: 'agree', bootstrap: 'yes' },
        {},
      ]) {
        const ack = await emitUntyped(s, 'sync:subscribe', body);
        expect({ body, ok: ack.success || ack.code !== 'INVALID_PAYLOAD' }).toEqual({ body, ok: subscribe(body) as boolean });
      }
      const unsubscribe = validator('UnsubscribeRequest');
      for (const body of [
        { subscriptionId: 'nope' },
        { collection: 'agree' },
        { collection: 'agree', filter: 'x == 1' },
        {},
        { subscriptionId: 5 },
        { collection: '_sync' },
        { collection: 'agree', filter: 3 },
      ]) {
        const ack = await emitUntyped(s, 'sync:unsubscribe', body);
        expect({ body, ok: ack.success || ack.code !== 'INVALID_PAYLOAD' }).toEqual({ body, ok: unsubscribe(body) as boolean });
      }
      const update = validator('UpdateSubscriptionsRequest');
      for (const body of [
        { subscriptions: [] },
        { subscriptions: [{ collection: 'agree', query: 'TRUEPREDICATE' }] },
        {},
        { subscriptions: 'x' },
        { subscriptions: [{ collection: 'agree', query: 1 }] },
        { subscriptions: [5] },
      ]) {
        const ack = await emitUntyped(s, 'sync:update_subscriptions', body);
        expect({ body, ok: ack.success || ack.code !== 'INVALID_PAYLOAD' }).toEqual({ body, ok: update(body) as boolean });
      }
      const get = validator('GetChangesRequest');
      for (const body of [
        {},
        { limit: 10 },
        { limit: 0 },
        { limit: 1.5 },
        { limit: 'x' },
        { collection: '_sync_feed' },
        { collection: 'agree' },
        { since: -1 },
        { since: 'x' },
        { cursor: 5 },
      ]) {
        const ack = await emitUntyped(s, 'sync:get_changes', body);
        expect(ackValidator('sync.get_changes.ack')(ack)).toBe(true);
        expect({ body, success: ack.success }).toEqual({ body, success: get(body) as boolean });
        if (!ack.success) expect(ack.code).toBe('INVALID_PAYLOAD');
      }
    });
  });

  it("the server's own events fit the document: sync:changes, sync:bootstrap, join and ping acks", async () => {
    const res = await request(t.url).get('/asyncapi.json').expect(200);
    const doc = JSON.parse(res.text);
    const ajv = new Ajv({ strict: false });
    ajv.addSchema({ $id: 'asyncapi', components: { schemas: doc.components.schemas, messages: doc.components.messages } });
    const payload = (key: string) => ajv.getSchema(`asyncapi#/components/messages/${key}/payload`)!;
    const reader = await joinedClient(t.url, 'doc-reader');
    try {
      const docId = `live-${Date.now()}`;
      await emitAck(s, 'sync:change', { operation: 'insert', collection: 'events', documentId: `${docId}-0`, data: { n: 0 } });
      const page = collectEvents(reader, 'sync:bootstrap', 1);
      expect(payload('sync.subscribe.ack')(await emitAck(reader, 'sync:subscribe', { collection: 'events' }))).toBe(true);
      const [boot] = await page;
      expect({ boot, ok: payload('sync.bootstrap')(boot) }).toEqual({ boot, ok: true });
      const live = new Promise<unknown>((resolve) => reader.once('sync:changes', resolve));
      await emitAck(s, 'sync:change', { operation: 'insert', collection: 'events', documentId: docId, data: { n: 1 } });
      const changes = await live;
      expect({ changes, ok: payload('sync.changes')(changes) }).toEqual({ changes, ok: true });
      expect(payload('ping.ack')(await emitAck(reader, 'ping', { t: 1 }))).toBe(true);
      expect(payload('sync.join.ack')(await emitAck(reader, 'sync:join', { userId: 'doc-reader' }))).toBe(true);
      expect(payload('sync.unsubscribe.ack')(await emitAck(reader, 'sync:unsubscribe', { collection: 'events' }))).toBe(true);
    } finally {
      reader.close();
    }
  });

  describe('OpenAPI', () => {
    let doc: Record<string, any>;
    beforeAll(async () => {
      doc = (await request(t.url).get('/docs-json').expect(200)).body;
    });

    it('is a valid OpenAPI document with the admin, service and user bearer schemes', async () => {
      await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeDefined();
      expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['admin', 'service', 'user']);
      expect(doc.paths['/api/changes'].post.security).toEqual([{ service: [] }, { admin: [] }]);
      expect(doc.paths['/api/audit'].get.security).toEqual(expect.arrayContaining([{ admin: [] }]));
      await request(t.url).get('/docs').redirects(1).expect(200).expect('Content-Type', /html/);
    });

    it('has every route the application registers', () => {
      const documented = new Set<string>();
      for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>))
        for (const m of Object.keys(item)) documented.add(`${m.toUpperCase()} ${p}`);
      // the console's vendored chart library is a static file, left out of the document on purpose
      const routes = registeredRoutes(t).filter((r) => !r.includes('/console/vendor/'));
      expect(routes.length).toBeGreaterThan(5);
      expect(routes.filter((r) => !documented.has(r))).toEqual([]);
    });

    it('is not served with API_DOCS=false', async () => {
      const off = await startTestApp({ AUTH_MODE: 'dev', API_DOCS: 'false' }, 'apidocs-off');
      try {
        await request(off.url).get('/docs-json').expect(404);
        await request(off.url).get('/asyncapi.json').expect(200);
      } finally {
        await off.close();
      }
    });
  });
});
