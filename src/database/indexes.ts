import type { Collection, Document, IndexDescription, IndexSpecification } from 'mongodb';

/**
 * Creates indexes one command each. FerretDB v1.24 panics and drops the connection when a single
 * createIndexes command lists two or more indexes that all exist already (its duplicate filter
 * deletes from a slice it has shortened), which is what every restart on existing data sends.
 * MongoDB does not care either way; index creation happens once per start.
 */
export async function ensureIndexes<T extends Document>(collection: Collection<T>, specs: IndexDescription[]): Promise<void> {
  for (const { key, ...options } of specs) await collection.createIndex(key as IndexSpecification, options);
}
