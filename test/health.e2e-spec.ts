import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger } from '@nestjs/common';
import request from 'supertest';
import { DatabaseLauncher } from '../src/database/database-launcher.service';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, emitUntyped } from './support/app';

describe('HealthModule (embedded database managed by the app)', () => {
  let t: TestApp;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-health-'));
    t = await startTestApp({ MONGODB_URI: '', DATA_DIR: dataDir }, 'health');
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('GET /health answers 200 (liveness)', async () => {
    const res = await request(t.url).get('/health').expect(200);
    expect(res.body.status).toBe('ok');
  });

  it('GET /ready answers 200 while the database is up', async () => {
    const res = await request(t.url).get('/ready').expect(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.details.database.status).toBe('up');
  });

  it('keeps its data in DATA_DIR', () => {
    expect(fs.readdirSync(path.join(dataDir, 'ferretdb')).length).toBeGreaterThan(0);
  });

  it('GET /stats returns the protocol counters', async () => {
    const res = await request(t.url).get('/stats').expect(200);
    for (const key of ['totalChanges', 'syncedChanges', 'pendingChanges', 'activeConnections', 'activeUsers']) {
      expect(res.body).toHaveProperty(key);
    }
    expect(Array.isArray(res.body.activeUsers)).toBe(true);
  });

  it('GET /stats counts connected sockets', async () => {
    const s = await connectClient(t.url);
    try {
      await waitFor(async () => (await request(t.url).get('/stats')).body.activeConnections === 1, 5000, 'one connection');
    } finally {
      s.close();
    }
    await waitFor(async () => (await request(t.url).get('/stats')).body.activeConnections === 0, 5000, 'no connection');
  });

  it('a broken or oversized request body is a quiet 4xx: no error log line, no stack in the answer', async () => {
    const errors = jest.spyOn(Logger.prototype, 'error');
    try {
      const bad = await request(t.url).post('/api/changes').set('content-type', 'application/json').send('{"changes": [');
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ statusCode: 400, message: expect.any(String) });
      const big = await request(t.url)
        .post('/api/changes')
        .set('content-type', 'application/json')
        .send(`{"x":"${'a'.repeat(20 * 1024 * 1024)}"}`);
      expect(big.status).toBe(413);
      expect(big.body).toEqual({ statusCode: 413, message: 'request body too large' });
      expect(JSON.stringify([bad.body, big.body])).not.toMatch(/\bat .*\(|node_modules/);
      expect(errors).not.toHaveBeenCalled();
    } finally {
      errors.mockRestore();
    }
  });

  it('GET /metrics serves Prometheus text with process metrics', async () => {
    const res = await request(t.url).get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    expect(res.text).toMatch(/^# HELP process_cpu_user_seconds_total/m);
    expect(res.text).toMatch(/^sync_changes_received_total \d+/m);
    expect(res.text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
  });

  it('socket.io answers ping at /socket.io', async () => {
    const s = await connectClient(t.url);
    try {
      const t0 = Date.now();
      const ack = await emitAck(s, 'ping', { t: t0 });
      expect(ack.clientTimestamp).toBe(t0);
      expect(typeof ack.timestamp).toBe('number');
      expect(typeof ack.latency).toBe('number');
      const bare = await emitUntyped(s, 'ping', null);
      expect(bare.clientTimestamp).toBeNull();
    } finally {
      s.close();
    }
  });

  it('/ready turns 503 when the database process dies and 200 again once it is back, without a server restart', async () => {
    const launcher = t.app.get(DatabaseLauncher);
    const db = launcher.embeddedDatabase!;
    expect(db).toBeDefined();
    const firstPid = db.pid;
    db.kill('SIGKILL');
    await waitFor(async () => (await request(t.url).get('/ready')).status === 503, 10_000, '/ready to fail');
    const down = await request(t.url).get('/ready');
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('error');
    // /health must stay 200: a database outage is not a reason to restart the pod
    await request(t.url).get('/health').expect(200);
    // the supervisor restarts the child on the same port and the driver reconnects
    await waitFor(async () => (await request(t.url).get('/ready')).status === 200, 30_000, '/ready to recover');
    expect(db.pid).not.toBe(firstPid);
  });
});
