import { ExecutionContext, ForbiddenException, Logger, UnauthorizedException } from '@nestjs/common';
import { loadConfig } from '../../config/config.loader';
import { MetricsService } from '../../health/metrics.service';
import { hs256, TEST_SECRET } from '../../../test/support/jwt';
import { AdminGrant } from '../admin-grant';
import { AuthService } from '../auth.service';
import { AuthenticatedRequest, HttpAuthGuard, ServiceAuthGuard } from './http-auth.guard';

Logger.overrideLogger(false);

function auth(env: Record<string, string>): AuthService {
  return new AuthService(loadConfig({ NODE_ENV: 'test', ...env }, '/nonexistent'), new MetricsService());
}

function grant(env: Record<string, string>): AdminGrant {
  const config = loadConfig({ NODE_ENV: 'test', ...env }, '/nonexistent');
  return new AdminGrant(config, new AuthService(config, new MetricsService()));
}

function ctx(headers: Record<string, string>): { ctx: ExecutionContext; req: AuthenticatedRequest } {
  const req = { headers, ip: '127.0.0.1', method: 'GET', path: '/api/x' } as unknown as AuthenticatedRequest;
  return { req, ctx: { switchToHttp: () => ({ getRequest: () => req }) } as unknown as ExecutionContext };
}

const SERVICE = 'service-token-0123456789-0123456789';

describe('HttpAuthGuard', () => {
  const guard = new HttpAuthGuard(auth({ AUTH_JWT_SECRET: TEST_SECRET }));

  it('puts the token user on the request', async () => {
    const { ctx: c, req } = ctx({ authorization: `Bearer ${await hs256({ sub: 'alice' })}` });
    await expect(guard.canActivate(c)).resolves.toBe(true);
    expect(req.user?.id).toBe('alice');
  });

  it('refuses a missing or invalid token, and X-User-Id outside dev mode', async () => {
    await expect(guard.canActivate(ctx({}).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
    await expect(guard.canActivate(ctx({ authorization: 'Bearer nope' }).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
    await expect(guard.canActivate(ctx({ 'x-user-id': 'alice' }).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
  });

  it('accepts X-User-Id in dev mode', async () => {
    const { ctx: c, req } = ctx({ 'x-user-id': 'alice' });
    await expect(new HttpAuthGuard(auth({})).canActivate(c)).resolves.toBe(true);
    expect(req.user).toMatchObject({ id: 'alice', insecure: true });
  });
});

describe('ServiceAuthGuard', () => {
  const guard = new ServiceAuthGuard(grant({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_SERVICE_TOKEN: SERVICE, ADMIN_USER_IDS: 'root' }));

  it('accepts the service token and admins', async () => {
    const s = ctx({ authorization: `Bearer ${SERVICE}` });
    await expect(guard.canActivate(s.ctx)).resolves.toBe(true);
    expect(s.req.user?.id).toBe('service');
    const a = ctx({ authorization: `Bearer ${await hs256({ sub: 'root' })}` });
    await expect(guard.canActivate(a.ctx)).resolves.toBe(true);
    expect(a.req.user?.id).toBe('root');
  });

  it('refuses users, wrong tokens and nothing', async () => {
    await expect(guard.canActivate(ctx({ authorization: `Bearer ${await hs256({ sub: 'alice' })}` }).ctx)).rejects.toBeInstanceOf(ForbiddenException);
    // a token cannot make itself an admin: only the configuration grants it
    for (const claims of [{ role: 'admin' }, { roles: ['admin'] }, { admin: true }])
      await expect(guard.canActivate(ctx({ authorization: `Bearer ${await hs256({ sub: 'mallory', ...claims })}` }).ctx)).rejects.toBeInstanceOf(
        ForbiddenException,
      );
    await expect(guard.canActivate(ctx({ authorization: `Bearer ${SERVICE}x` }).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
    await expect(guard.canActivate(ctx({}).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
  });

  it('is open in dev mode only when no service token is configured', async () => {
    await expect(new ServiceAuthGuard(grant({})).canActivate(ctx({}).ctx)).resolves.toBe(true);
    await expect(new ServiceAuthGuard(grant({ AUTH_SERVICE_TOKEN: SERVICE })).canActivate(ctx({}).ctx)).rejects.toBeInstanceOf(UnauthorizedException);
  });
});

describe('AdminGrant', () => {
  it('grants by ADMIN_USER_IDS and, opted in, by ADMIN_CLAIM; never to a dev-mode user', () => {
    const g = grant({ AUTH_JWT_SECRET: TEST_SECRET, ADMIN_USER_IDS: 'root', ADMIN_CLAIM: 'https://example.com/roles:sync-admin' });
    expect(g.isAdmin({ id: 'root', claims: {} })).toBe(true);
    expect(g.isAdmin({ id: 'root', claims: {}, insecure: true })).toBe(false);
    expect(g.isAdmin({ id: 'x', claims: { 'https://example.com/roles': ['a', 'sync-admin'] } })).toBe(true);
    expect(g.isAdmin({ id: 'x', claims: { 'https://example.com/roles': 'sync-admin' } })).toBe(true);
    expect(g.isAdmin({ id: 'x', claims: { 'https://example.com/roles': 'sync-admin' }, insecure: true })).toBe(false);
    expect(g.isAdmin({ id: 'x', claims: { 'https://example.com/roles': ['sync-admin-2'] } })).toBe(false);
    expect(g.isAdmin({ id: 'x', claims: { roles: ['admin'], role: 'admin', admin: true } })).toBe(false);
    const off = grant({ AUTH_JWT_SECRET: TEST_SECRET });
    expect(off.isAdmin({ id: 'x', claims: { roles: ['sync-admin'], role: 'admin', admin: true } })).toBe(false);
  });
});
