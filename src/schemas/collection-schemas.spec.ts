import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { compileCollectionSchemas, describeViolation, loadCollectionSchemas } from './collection-schemas';
import { execFileSync } from 'node:child_process';

const EXAMPLE = path.join(__dirname, '..', '..', 'config', 'schemas.example.json');

describe('collection schemas', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'schemas-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, json: unknown) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, typeof json === 'string' ? json : JSON.stringify(json));
    return f;
  };
  const compileOne = (schema: Record<string, unknown>) => compileCollectionSchemas(new Map([['c', schema]])).get('c')!;

  it('reads the schemas file and the rules file, and refuses a collection given a schema twice', () => {
    const schemasFile = write('s.json', { collections: { a: { type: 'object' } } });
    const rulesFile = write('r.json', { collections: { b: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE', schema: { type: 'object' } } } });
    expect([...loadCollectionSchemas({ schemasFile, rulesFile }).keys()]).toEqual(['a', 'b']);
    const dup = write('r2.json', { collections: { a: { schema: { type: 'object' } } } });
    expect(() => loadCollectionSchemas({ schemasFile, rulesFile: dup })).toThrow(/already has a schema/);
    expect(() => loadCollectionSchemas({ schemasFile: write('bad.json', { collections: { _sync_feed: {} } }) })).toThrow(/not a valid collection name/);
    expect(() => loadCollectionSchemas({ schemasFile: write('shape.json', { tasks: {} }) })).toThrow(/expected \{ "collections"/);
    expect(() => loadCollectionSchemas({ schemasFile: write('broken.json', '{') })).toThrow(/not valid JSON/);
  });

  it('compiles strictly: unknown formats, unknown keywords and remote refs stop the boot', () => {
    expect(() => compileOne({ type: 'object', properties: { a: { type: 'string', format: 'no-such-format' } } })).toThrow(
      /"c" does not compile.*unknown format/,
    );
    expect(() => compileOne({ type: 'object', propertiez: {} })).toThrow(/does not compile/);
    expect(() => compileOne({ type: 'object', properties: { a: { $ref: 'https://example.com/schema.json' } } })).toThrow(/does not compile/);
    expect(() => compileOne({ type: 'object', properties: { a: { type: 'string', format: 'email' } } })).not.toThrow();
  });

  it('names the JSON pointer of what is wrong', () => {
    const [people] = compileCollectionSchemas(loadCollectionSchemas({ schemasFile: EXAMPLE })).values();
    const first = (doc: unknown) => (people(doc) ? null : describeViolation(people.errors![0]));
    expect(first({ name: 'Ann', dogs: [{ name: 'Rex' }], address: { city: 'Oslo' }, email: null })).toBeNull();
    expect(first({})).toEqual({ pointer: '/name', message: 'is required' });
    expect(first({ name: 'Ann', dogs: [{ name: 'Rex' }, { name: 'Fido', age: 'old' }] })).toMatchObject({ pointer: '/dogs/1/age' });
    expect(first({ name: 'Ann', address: {} })).toEqual({ pointer: '/address/city', message: 'is required' });
    expect(first({ name: 'Ann', 'a/b': 1 })).toEqual({ pointer: '/a~1b', message: 'is not allowed by the schema' });
    expect(first({ name: 'Ann', email: 'not an email' })).toMatchObject({ pointer: '/email' });
  });

  it('generates TypeScript types that type-check (npm run schema:types)', () => {
    // the command itself (prettier, which formats the output, needs a real Node process, not jest's VM)
    const root = path.join(__dirname, '..', '..');
    const text = execFileSync(process.execPath, [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'scripts/schema-types.ts', '--schemas', EXAMPLE], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(text).toMatch(/export interface Person \{/);
    expect(text).toMatch(/"people": Person;/);
    const types = write('types.ts', text);
    const use = write(
      'use.ts',
      `import type { Collections, Person, Synced } from './types';
const p: Person = { name: 'Ann', address: { city: 'Oslo' }, dogs: [{ name: 'Rex', age: 3 }], tags: ['a'] };
const t: Collections['tasks'] = { title: 'x', done: false, priority: 'high' };
const s: Synced<Person> = { ...p, _id: 'p1' };
// @ts-expect-error a required field is missing
const bad: Person = { age: 3 };
// @ts-expect-error unknown fields are refused (additionalProperties: false)
const extra: Collections['tasks'] = { title: 'x', done: true, colour: 'red' };
export { p, t, s, bad, extra };
`,
    );
    const program = ts.createProgram([types, use], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      skipLibCheck: true,
    });
    const diags = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diags).toEqual([]);
  });
});
