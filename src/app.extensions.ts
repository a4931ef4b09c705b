import { DynamicModule, Type } from '@nestjs/common';
import { GLOBAL_MODULE_METADATA, MODULE_METADATA } from '@nestjs/common/constants';
import { CONFLICT_RESOLVER } from './conflict/conflict.types';
import { CHANGE_ROUTER, CLUSTER_BUS } from './delivery/delivery.ports';

/**
 * A user's own Nest module plugged into the app through createApp's `extensions`
 * (docs/EXTENDING.md). A global one that exports CONFLICT_RESOLVER or CLUSTER_BUS replaces the
 * built-in module that provides it; one that exports CHANGE_ROUTER replaces the subscription router.
 */
export type AppExtension = Type | DynamicModule;

/** The tokens users may provide; each must come from a global module so the app's modules see it. */
const EXTENSION_TOKENS = [CONFLICT_RESOLVER, CHANGE_ROUTER, CLUSTER_BUS] as const;

const tokenName = (token: unknown) => (typeof token === 'symbol' ? (token.description ?? 'symbol') : String(token));

/**
 * The extension tokens the given modules export. Throws when a module exports one without being
 * global, or when two modules export the same one: the app would otherwise start with the built-in
 * provider, or with whichever Nest happened to find first.
 */
export function extensionTokens(extensions: AppExtension[]): Set<unknown> {
  const found = new Map<unknown, string>();
  for (const ext of extensions) {
    const type = typeof ext === 'function' ? ext : ext.module;
    const dynamic = typeof ext === 'function' ? undefined : ext;
    const exported = [...((Reflect.getMetadata(MODULE_METADATA.EXPORTS, type) as unknown[] | undefined) ?? []), ...(dynamic?.exports ?? [])].map((e) =>
      e !== null && typeof e === 'object' && 'provide' in e ? e.provide : e,
    );
    const global = dynamic?.global === true || Reflect.getMetadata(GLOBAL_MODULE_METADATA, type) === true;
    for (const token of EXTENSION_TOKENS) {
      if (!exported.includes(token)) continue;
      if (!global) throw new Error(`extension ${type.name} exports ${tokenName(token)} but is not global (@Global(), or global: true)`);
      const other = found.get(token);
      if (other) throw new Error(`extensions ${other} and ${type.name} both export ${tokenName(token)}`);
      found.set(token, type.name);
    }
  }
  return new Set(found.keys());
}
