import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AppConfig } from '../config/config.schema';
import { PermissionService } from './permission.service';
import { loadRulesFile, parseRules, ruleFor, RulesFileError } from './rules.loader';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rules-spec-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(content: string): string {
  const f = path.join(dir, `r${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(f, content);
  return f;
}
const cfg = (rulesFile?: string) => ({ env: 'test', sync: { rulesFile } }) as unknown as AppConfig;
const user = (id: string, claims: Record<string, unknown> = {}) => ({ id, claims });

const EXAMPLE = path.join(__dirname, '..', '..', 'config', 'rules.example.json');

describe('rules loader', () => {
  it('loads the example rules file', () => {
    const rules = loadRulesFile(EXAMPLE);
    expect([...rules.collections.keys()].sort()).toEqual(['chat', 'tasks']);
  });

  it.each([
    ['not JSON', '{ nope', /not valid JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['an unknown top-level key', '{ "colections": {} }', /unknown top-level key "colections"/],
    ['a rule that is not a string', '{ "default": { "read": 1, "write": "TRUEPREDICATE" } }', /default\.read: must be a string/],
    [
      'a rule that does not parse (with its position)',
      '{ "collections": { "tasks": { "read": "userId == ", "write": "TRUEPREDICATE" } } }',
      /collections\.tasks\.read: .*position 10/,
    ],
    ['an argument in a rule', '{ "collections": { "t": { "read": "a == $0", "write": "TRUEPREDICATE" } } }', /cannot use arguments/],
    ['an unknown rule key', '{ "collections": { "t": { "reed": "TRUEPREDICATE" } } }', /unknown key "reed"/],
    ['a fieldTypes of an unknown type', '{ "collections": { "t": { "fieldTypes": { "a": "uuid" } } } }', /collections\.t\.fieldTypes\.a: must be/],
    ['a fieldTypes path with an operator', '{ "collections": { "t": { "fieldTypes": { "$where": "date" } } } }', /is not a field path/],
    ['a fieldTypes on _id', '{ "collections": { "t": { "fieldTypes": { "_id": "objectId" } } } }', /is not a field path/],
    ['a fieldTypes that is not an object', '{ "collections": { "t": { "fieldTypes": ["a"] } } }', /fieldTypes: must be an object/],
    [
      'an unknown idType',
      '{ "collections": { "t": { "read": "TRUEPREDICATE", "write": "TRUEPREDICATE", "idType": "uuid" } } }',
      /collections\.t\.idType: must be/,
    ],
    ['a collection that is not an object', '{ "collections": { "t": "TRUEPREDICATE" } }', /collections\.t: must be an object/],
    ['a default without write', '{ "default": { "read": "TRUEPREDICATE" } }', /default\.write: missing/],
  ])('refuses %s, naming the file', (_name, content, message) => {
    const f = file(content);
    expect(() => loadRulesFile(f)).toThrow(RulesFileError);
    expect(() => loadRulesFile(f)).toThrow(message);
    expect(() => loadRulesFile(f)).toThrow(f);
  });

  it('refuses a missing file', () => {
    expect(() => loadRulesFile(path.join(dir, 'missing.json'))).toThrow(/cannot be read/);
  });

  it('a missing default closes every other collection; a missing read/write falls back to the default', () => {
    const closed = parseRules({ collections: { a: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' } } });
    expect(ruleFor(closed, 'b')).toBe(closed.default);
    const r = parseRules({ default: { read: 'x == 1', write: 'FALSEPREDICATE' }, collections: { a: { write: 'TRUEPREDICATE' } } });
    expect(ruleFor(r, 'a').read).toBe(r.default.read);
  });

  it('idType: auto by default, per collection, inherited from the default entry', () => {
    expect(parseRules({}).default.idType).toBe('auto');
    const r = parseRules({ default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE', idType: 'string' }, collections: { a: { idType: 'objectId' }, b: {} } });
    expect(ruleFor(r, 'a').idType).toBe('objectId');
    expect(ruleFor(r, 'b').idType).toBe('string');
    expect(ruleFor(r, 'c').idType).toBe('string');
  });

  it('fieldTypes: per collection, dotted paths, inherited from the default entry', () => {
    const r = parseRules({
      default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE', fieldTypes: { at: 'date' } },
      collections: { a: { fieldTypes: { owner_id: 'objectId', 'm.refs': 'objectId[]' } }, b: {} },
    });
    expect(ruleFor(r, 'a').fieldTypes).toEqual({ owner_id: 'objectId', 'm.refs': 'objectId[]' });
    expect(ruleFor(r, 'b').fieldTypes).toEqual({ at: 'date' });
    expect(parseRules({}).default.fieldTypes).toBeUndefined();
  });

  it('collection names like __proto__ and constructor get the default rule', () => {
    const r = parseRules(
      JSON.parse(
        '{ "default": { "read": "FALSEPREDICATE", "write": "FALSEPREDICATE" }, "collections": { "tasks": { "read": "TRUEPREDICATE", "write": "TRUEPREDICATE" } } }',
      ),
    );
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expect(ruleFor(r, name)).toBe(r.default);
    const p = new PermissionService(cfg(file(JSON.stringify({ default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' }, collections: {} }))));
    for (const name of ['__proto__', 'constructor']) {
      expect(p.canRead(user('u'), name, { a: 1 })).toBe(false);
      expect(p.readFilter(user('u'), name)).toBeNull();
    }
  });
});

describe('PermissionService with rules', () => {
  const p = new PermissionService(cfg(EXAMPLE));
  const orgRules = new PermissionService(
    cfg(
      file(
        JSON.stringify({
          default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
          collections: { docs: { read: 'orgId == %user.org', write: 'orgId == %user.org AND %user.role == "editor"' } },
        }),
      ),
    ),
  );

  it('reads: own tasks only, all chat, nothing elsewhere', () => {
    expect(p.canRead(user('alice'), 'tasks', { userId: 'alice' })).toBe(true);
    expect(p.canRead(user('bob'), 'tasks', { userId: 'alice' })).toBe(false);
    expect(p.canRead(user('bob'), 'chat', { senderId: 'alice' })).toBe(true);
    expect(p.canRead(user('bob'), 'secrets', {})).toBe(false);
    expect(p.readFilter(user('bob'), 'tasks')).toEqual({ userId: 'bob' });
    expect(p.readFilter(user('bob'), 'chat')).toEqual({});
    expect(p.readFilter(user('bob'), 'secrets')).toBeNull();
  });

  it('writes: the rule must match before and after', () => {
    expect(p.canWrite(user('bob'), 'tasks', null, { userId: 'bob' })).toBe(true);
    expect(p.canWrite(user('bob'), 'tasks', null, { userId: 'alice' })).toBe(false);
    expect(p.canWrite(user('bob'), 'tasks', { userId: 'alice' }, { userId: 'bob' })).toBe(false); // take-over
    expect(p.canWrite(user('bob'), 'tasks', { userId: 'bob' }, { userId: 'alice' })).toBe(false); // give-away
    expect(p.canWrite(user('bob'), 'tasks', { userId: 'alice' }, null)).toBe(false); // delete
    expect(p.canWrite(user('bob'), 'tasks', { userId: 'bob' }, null)).toBe(true);
    expect(p.canWrite(user('bob'), 'chat', null, { senderId: 'alice' })).toBe(false);
  });

  it('claims: %user.<claim> binds per user; a missing claim matches nothing', () => {
    expect(orgRules.canRead(user('a', { org: 'o1' }), 'docs', { orgId: 'o1' })).toBe(true);
    expect(orgRules.canRead(user('b', { org: 'o2' }), 'docs', { orgId: 'o1' })).toBe(false);
    expect(orgRules.canRead(user('c'), 'docs', {})).toBe(false);
    expect(orgRules.readFilter(user('c'), 'docs')).toBeNull();
    expect(orgRules.canWrite(user('a', { org: 'o1', role: 'editor' }), 'docs', null, { orgId: 'o1' })).toBe(true);
    expect(orgRules.canWrite(user('a', { org: 'o1', role: 'viewer' }), 'docs', null, { orgId: 'o1' })).toBe(false);
    // a claim named id never overrides the authenticated id
    expect(p.canRead(user('alice', { id: 'bob' }), 'tasks', { userId: 'bob' })).toBe(false);
  });

  it('a claim of an unusable shape denies instead of throwing', () => {
    expect(orgRules.canRead(user('x', { org: { $ne: null } }), 'docs', { orgId: 'o1' })).toBe(false);
  });

  it('caches the bound rule per user object', () => {
    const u = user('alice');
    expect(p.rule(u, 'tasks', 'read')).toBe(p.rule(u, 'tasks', 'read'));
    expect(p.rule(u, 'chat', 'read')).toBe(p.rule(user('bob'), 'chat', 'read')); // no %user: shared
  });

  it('without a rules file everything is allowed', () => {
    const open = new PermissionService(cfg(undefined));
    expect(open.canRead(user('a'), 'tasks', { userId: 'b' })).toBe(true);
    expect(open.canWrite(user('a'), 'tasks', { userId: 'b' }, { userId: 'c' })).toBe(true);
    expect(open.readFilter(user('a'), 'x')).toEqual({});
  });

  it('an invalid rules file stops the service from being built', () => {
    expect(() => new PermissionService(cfg(file('{ "default": { "read": "((", "write": "x" } }')))).toThrow(RulesFileError);
  });
});
