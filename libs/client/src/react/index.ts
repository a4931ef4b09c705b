/**
 * React bindings of the sync client (`@realm-sync/client/react`): a provider and hooks built on
 * useSyncExternalStore. Every hook returns a stable snapshot: the same array/object as long as
 * nothing it shows changed, so a change to another collection or document re-renders nothing.
 * Changes made in one tick are coalesced into one notification.
 *
 * This module imports only types from the SDK (and its small dependency-free ObjectId helper), so it
 * shares the app's SyncClient instance and adds nothing but these hooks to a bundle. React (>= 18)
 * is a peer dependency.
 */
import { createContext, createElement, useContext, useMemo, useRef, useSyncExternalStore, type ReactElement, type ReactNode } from 'react';
import type { InspectReport, SyncClient } from '../sync-client';
import type { SyncDocument } from '../../../protocol/src/types';
import type { ViewChange, ViewFilter } from '../local-view';
import { toDocumentId, type DocumentIdInput } from '../object-id';

const SyncContext = createContext<SyncClient | null>(null);

export interface SyncProviderProps {
  client: SyncClient;
  children?: ReactNode;
}

/** Makes `client` available to the hooks below. The provider does not connect or close it. */
export function SyncProvider({ client, children }: SyncProviderProps): ReactElement {
  return createElement(SyncContext.Provider, { value: client }, children);
}

/** The client of the nearest SyncProvider. */
export function useSyncClient(): SyncClient {
  const client = useContext(SyncContext);
  if (!client) throw new Error('useSyncClient/useQuery/useDocument/useSyncStatus need a <SyncProvider client={...}> above them');
  return client;
}

/** An external store with a cached snapshot, notified at most once per tick. */
export interface Store<T> {
  subscribe(onChange: () => void): () => void;
  getSnapshot(): T;
}

function viewStore<T>(client: SyncClient, relevant: (c: ViewChange) => boolean, read: () => T, same: (a: T, b: T) => boolean): Store<T> {
  let snapshot: T | undefined;
  let dirty = true;
  return {
    subscribe(onChange) {
      let scheduled = false;
      const off = client.on('change', (c) => {
        if (!relevant(c)) return;
        dirty = true;
        if (scheduled) return;
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          onChange();
        });
      });
      // something may have changed between the render and this subscription
      dirty = true;
      queueMicrotask(onChange);
      return off;
    },
    getSnapshot() {
      if (dirty || snapshot === undefined) {
        const next = read();
        if (snapshot === undefined || !same(snapshot, next)) snapshot = next;
        dirty = false;
      }
      return snapshot;
    },
  };
}

const sameItems = (a: readonly unknown[], b: readonly unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The live documents of a collection (synced state with pending local changes), optionally
 * filtered with the query language (`'done == false AND owner == $0'`, `[userId]`) or a predicate.
 * Re-renders only when the result changes. The client must hold a subscription covering them
 * (`client.subscribe(collection, ...)`).
 */
export function useQuery(collection: string, filter?: ViewFilter, args?: unknown[]): SyncDocument[] {
  const client = useSyncClient();
  // a predicate may be a new function at every render: use the latest without making a new store
  const predicate = useRef<ViewFilter | undefined>(filter);
  predicate.current = filter;
  const filterKey = typeof filter === 'function' ? '\u0000fn' : (filter ?? '');
  const argsKey = JSON.stringify(args ?? []);
  const store = useMemo(
    () =>
      viewStore(
        client,
        (c) => c.collection === collection,
        () => client.getDocuments(collection, predicate.current, args),
        sameItems,
      ),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client, collection, filterKey, argsKey],
  );
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/**
 * One live document, or undefined when it does not exist here (yet). `id` takes the forms the rest
 * of the SDK takes: a string, or an ObjectId-like value (a `BSON.ObjectId` / Realm ObjectId, i.e.
 * anything with `toHexString()`, or `{ $oid: "<hex>" }`), which names the document by its 24-hex
 * form. A new ObjectId object at every render is fine: the hook keys on the hex string. An
 * ObjectId-like value that does not give 24 hex characters throws (a TypeError), as getDocument does.
 */
export function useDocument(collection: string, id: DocumentIdInput): SyncDocument | undefined {
  const client = useSyncClient();
  const documentId = toDocumentId(id).id;
  const store = useMemo(() => documentStore(client, collection, documentId), [client, collection, documentId]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot).doc;
}

/** @internal useDocument's store (exported for its tests): one document, by any id form. */
export function documentStore(client: SyncClient, collection: string, id: DocumentIdInput): Store<{ doc: SyncDocument | undefined }> {
  const documentId = toDocumentId(id).id;
  return viewStore<{ doc: SyncDocument | undefined }>(
    client,
    (c) => c.collection === collection && c.documentId === documentId,
    () => ({ doc: client.getDocument(collection, documentId) }),
    (a, b) => a.doc === b.doc,
  );
}

/** What useSyncStatus returns. */
export interface SyncStatus {
  /** Connected and joined. */
  online: boolean;
  /** Local changes the server has not answered yet. */
  pending: number;
  /** When (UTC ms) the client last finished reading the feed or had changes acknowledged; 0: never. */
  lastSync: number;
  /** The last error or refused change, with its protocol code and time (compare `at` with lastSync). */
  lastError: { code: string; message: string; at: number } | null;
}

const statusStores = new WeakMap<SyncClient, Store<SyncStatus>>();

function statusStore(client: SyncClient): Store<SyncStatus> {
  let store = statusStores.get(client);
  if (store) return store;
  let lastError: SyncStatus['lastError'] = null;
  let snapshot: SyncStatus = { online: client.isOnline(), pending: client.getPendingChangesCount(), lastSync: client.getLastSyncTimestamp(), lastError };
  const listeners = new Set<() => void>();
  let offs: (() => void)[] = [];
  const refresh = () => {
    const next: SyncStatus = { online: client.isOnline(), pending: client.getPendingChangesCount(), lastSync: client.getLastSyncTimestamp(), lastError };
    if (next.online === snapshot.online && next.pending === snapshot.pending && next.lastSync === snapshot.lastSync && next.lastError === snapshot.lastError)
      return;
    snapshot = next;
    for (const l of [...listeners]) l();
  };
  store = {
    subscribe(onChange) {
      listeners.add(onChange);
      if (listeners.size === 1) {
        offs = [
          client.on('online', refresh),
          client.on('pending', refresh),
          client.on('acked', refresh),
          client.on('synced', refresh),
          client.on('error', (e) => {
            lastError = { code: (e as { code?: string }).code ?? 'ERROR', message: e.message, at: Date.now() };
            refresh();
          }),
          client.on('rejected', (r) => {
            lastError = { code: r.code, message: `${r.change.operation} ${r.change.collection}/${r.change.documentId}: ${r.error}`, at: Date.now() };
            refresh();
          }),
        ];
        refresh();
      }
      return () => {
        listeners.delete(onChange);
        if (!listeners.size) {
          for (const off of offs) off();
          offs = [];
        }
      };
    },
    getSnapshot: () => snapshot,
  };
  statusStores.set(client, store);
  return store;
}

/** Online state, pending count, last sync time and last error; re-renders only when one changes. */
export function useSyncStatus(): SyncStatus {
  const store = statusStore(useSyncClient());
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/**
 * `client.inspect()` refreshed on every sync event (and every `intervalMs`, default 1 s, while
 * mounted): for a debug panel that shows why something has not synced.
 */
export function useInspect(intervalMs = 1000): InspectReport {
  const client = useSyncClient();
  const store = useMemo<Store<InspectReport>>(() => {
    let snapshot = client.inspect();
    let json = JSON.stringify(snapshot);
    return {
      subscribe(onChange) {
        const update = () => {
          const next = client.inspect();
          const j = JSON.stringify(next);
          if (j === json) return;
          snapshot = next;
          json = j;
          onChange();
        };
        const offs = [
          client.on('pending', update),
          client.on('synced', update),
          client.on('online', update),
          client.on('rejected', update),
          client.on('bootstrap', update),
        ];
        const timer = setInterval(update, intervalMs);
        update();
        return () => {
          clearInterval(timer);
          for (const off of offs) off();
        };
      },
      getSnapshot: () => snapshot,
    };
  }, [client, intervalMs]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
