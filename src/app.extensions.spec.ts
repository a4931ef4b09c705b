import 'reflect-metadata';
import { Global, Module } from '@nestjs/common';
import { extensionTokens } from './app.extensions';
import { CONFLICT_RESOLVER } from './conflict/conflict.types';
import { CHANGE_ROUTER, CLUSTER_BUS } from './delivery/delivery.ports';

const resolver = { provide: CONFLICT_RESOLVER, useValue: () => ({ kind: 'conflict', current: null, timestamp: null, reason: 'no' }) };

@Global()
@Module({ providers: [resolver], exports: [CONFLICT_RESOLVER] })
class GlobalResolverModule {}

@Module({ providers: [resolver], exports: [CONFLICT_RESOLVER] })
class LocalResolverModule {}

@Module({})
class Dynamic {}

describe('extensionTokens', () => {
  it('finds the extension tokens exported by global modules, static or dynamic', () => {
    const dynamic = { module: Dynamic, global: true, providers: [], exports: [{ provide: CLUSTER_BUS, useValue: null }, CHANGE_ROUTER, 'other'] };
    expect(extensionTokens([GlobalResolverModule, dynamic])).toEqual(new Set([CONFLICT_RESOLVER, CLUSTER_BUS, CHANGE_ROUTER]));
    expect(extensionTokens([])).toEqual(new Set());
  });

  it('refuses an extension that exports a token without being global', () => {
    expect(() => extensionTokens([LocalResolverModule])).toThrow('extension LocalResolverModule exports CONFLICT_RESOLVER but is not global');
    expect(() => extensionTokens([{ module: Dynamic, exports: [CLUSTER_BUS] }])).toThrow('exports CLUSTER_BUS but is not global');
  });

  it('refuses two extensions that export the same token', () => {
    const dynamic = { module: Dynamic, global: true, exports: [CONFLICT_RESOLVER] };
    expect(() => extensionTokens([GlobalResolverModule, dynamic])).toThrow('extensions GlobalResolverModule and Dynamic both export CONFLICT_RESOLVER');
  });
});
