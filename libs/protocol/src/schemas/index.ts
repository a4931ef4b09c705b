export * from './safe-data';
export * from './primitives';
export * from './change.schemas';
export * from './events.schemas';
export * from './parse';
