import type { Db, Document, Filter } from 'mongodb';

/**
 * The feed entries matching `filter`, in feed order, with the state they have: an entry stored
 * `pending` whose batch's commit marker (`_sync_commits`, named by the entry's `commit`) exists is
 * applied (insert-only commit, docs/ARCHITECTURE.md). With `state`, only the entries in that state.
 */
export async function feedEntries(db: Db, filter: Filter<Document> = {}, state?: string): Promise<any[]> {
  const entries = await db.collection('_sync_feed').find(filter).sort({ _id: 1 }).toArray();
  const ids = [...new Set(entries.filter((e) => e.state === 'pending' && typeof e.commit === 'string').map((e) => e.commit as string))];
  const markers = ids.length
    ? await db
        .collection<{ _id: string }>('_sync_commits')
        .find({ _id: { $in: ids } })
        .toArray()
    : [];
  const committed = new Set(markers.map((m) => m._id));
  for (const e of entries) if (e.state === 'pending' && committed.has(e.commit)) e.state = 'applied';
  return state === undefined ? entries : entries.filter((e) => e.state === state);
}
