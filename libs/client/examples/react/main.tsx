/**
 * The React example (served at /demo/react/): a shared task list on `@realm-sync/client` and its
 * React bindings, with an inspector panel. Built by scripts/build-client.ts (`npm run build`) into
 * public/demo/react/app.js, importing the package by its name as an app would (resolved to the
 * built package in libs/client/dist).
 *
 * ?user=alice picks the user (dev mode), &token=... a JWT, &collection=... the collection.
 */
import { StrictMode, useState, type FormEvent } from 'react';
import { createRoot } from 'react-dom/client';
import { SyncClient, type SyncDocument } from '@realm-sync/client';
import { SyncProvider, useInspect, useQuery, useSyncClient, useSyncStatus } from '@realm-sync/client/react';

const params = new URLSearchParams(location.search);
const userId = params.get('user') || `guest-${Math.random().toString(36).slice(2, 6)}`;
const COLLECTION = params.get('collection') || 'tasks';

const client = new SyncClient(location.origin, userId, `react-demo:${userId}`, {
  token: params.get('token') || undefined,
  logger: { warn: console.warn.bind(console), error: console.error.bind(console) },
});
/** Render counts, so the browser test can check that unrelated changes re-render nothing. */
const renders = { tasks: 0, status: 0 };
(window as unknown as { reactDemo: unknown }).reactDemo = { client, userId, renders };

function Status() {
  const { online, pending, lastSync, lastError } = useSyncStatus();
  renders.status++;
  return (
    <div className="status">
      <span className={`badge ${online ? 'online' : 'offline'}`} data-testid="online">
        {online ? 'online' : 'offline'}
      </span>
      <span className={`badge${pending ? ' busy' : ''}`} data-testid="pending">
        {pending} pending
      </span>
      {lastSync ? (
        <span className="hint" data-testid="last-sync">
          synced {new Date(lastSync).toLocaleTimeString()}
        </span>
      ) : null}
      {lastError ? (
        <span className="badge offline" data-testid="last-error" title={lastError.message}>
          {lastError.code}
        </span>
      ) : null}
    </div>
  );
}

function Task({ task }: { task: SyncDocument }) {
  const c = useSyncClient();
  const id = String(task._id);
  const report = (e: unknown) => console.error(e);
  return (
    <li data-testid="task" data-id={id} className={task.completed ? 'done' : ''}>
      <input
        type="checkbox"
        data-testid="toggle"
        aria-label="done"
        checked={!!task.completed}
        onChange={(e) => void c.makeChange('update', COLLECTION, id, { completed: e.target.checked }).catch(report)}
      />
      <span className="title" data-testid="title">
        {String(task.title ?? '')}
      </span>
      {c.view.isPending(COLLECTION, id) ? (
        <span className="pending" data-testid="task-pending">
          pending
        </span>
      ) : null}
      <span className="owner">{String(task.owner ?? '')}</span>
      <button className="delete" title="delete" data-testid="delete" onClick={() => void c.makeChange('delete', COLLECTION, id).catch(report)}>
        ×
      </button>
    </li>
  );
}

function Tasks() {
  const tasks = useQuery(COLLECTION);
  renders.tasks++;
  if (!tasks.length) return <p className="empty">No tasks yet.</p>;
  return (
    <ul data-testid="tasks">
      {tasks.map((t) => (
        <Task key={String(t._id)} task={t} />
      ))}
    </ul>
  );
}

function AddTask() {
  const c = useSyncClient();
  const [title, setTitle] = useState('');
  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    const t = title.trim();
    if (!t) return;
    setTitle('');
    const id = `task-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    c.makeChange('insert', COLLECTION, id, { title: t, completed: false, owner: userId }).catch((e) => console.error(e));
  };
  return (
    <form onSubmit={submit} autoComplete="off">
      <input name="title" placeholder="What needs doing?" maxLength={200} value={title} onChange={(e) => setTitle(e.target.value)} data-testid="new-title" />
      <button type="submit" data-testid="add">
        Add
      </button>
    </form>
  );
}

/** The inspector: why has something not synced? */
function Inspector() {
  const r = useInspect(1000);
  return (
    <details className="inspector" data-testid="inspector" open>
      <summary>Inspector</summary>
      <dl>
        <dt>cursor</dt>
        <dd data-testid="inspect-cursor">{r.cursor ?? '–'}</dd>
        <dt>reconnect</dt>
        <dd>
          {r.reconnect.nextAt
            ? `attempt ${r.reconnect.attempt}, next at ${new Date(r.reconnect.nextAt).toLocaleTimeString()}`
            : r.online
              ? 'connected'
              : 'waiting'}
        </dd>
        <dt>documents</dt>
        <dd data-testid="inspect-documents">
          {Object.entries(r.documents)
            .map(([c, n]) => `${c}: ${n}`)
            .join(', ') || 'none'}
        </dd>
        <dt>subscriptions</dt>
        <dd>
          {r.subscriptions.map((s) => (
            <div key={s.key} data-testid="inspect-subscription" data-state={s.state}>
              {s.collection}
              {s.filter ? ` (${s.filter})` : ''}: {s.state}
              {s.count !== null ? `, ${s.count} on the server` : ''}
            </div>
          ))}
        </dd>
        <dt>outbox ({r.outbox.length})</dt>
        <dd>
          {r.outbox.map((e) => (
            <div key={e.changeId} data-testid="outbox-entry" data-state={e.state}>
              #{e.seq} {e.operation} {e.collection}/{e.documentId}: {e.state}
              {e.attempts ? `, ${e.attempts} attempts` : ''}
              {e.lastError ? `, last error ${e.lastError.code}: ${e.lastError.message}` : ''}
            </div>
          ))}
        </dd>
      </dl>
    </details>
  );
}

function App() {
  const c = useSyncClient();
  const [offline, setOffline] = useState(false);
  const [showTasks, setShowTasks] = useState(true);
  return (
    <main>
      <header>
        <h1>Shared tasks (React)</h1>
        <Status />
      </header>
      <p className="who">
        Signed in as <strong data-testid="user">{userId}</strong> <span className="hint">(open this page in another window to watch changes sync)</span>
      </p>
      <AddTask />
      {showTasks ? <Tasks /> : <p className="hint">(list hidden)</p>}
      <footer>
        <label>
          <input
            type="checkbox"
            data-testid="go-offline"
            checked={offline}
            onChange={(e) => {
              setOffline(e.target.checked);
              if (e.target.checked) void c.disconnect();
              else c.connect().catch(() => undefined);
            }}
          />{' '}
          work offline
        </label>
        <label>
          <input type="checkbox" data-testid="hide-tasks" checked={!showTasks} onChange={(e) => setShowTasks(!e.target.checked)} /> hide the list
        </label>
      </footer>
      <Inspector />
    </main>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <SyncProvider client={client}>
      <App />
    </SyncProvider>
  </StrictMode>,
);

client
  .subscribe(COLLECTION)
  .then(() => client.connect())
  .catch((e) => console.error(e));
