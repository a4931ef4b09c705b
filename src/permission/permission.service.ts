import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { SyncDocument } from '@sync/protocol';
import { bindQuery, parseQuery, usesUserVars, type CompiledQuery, type QueryNode, type QueryVars } from '@sync/protocol/query';
import type { AuthUser } from '../auth/auth.types';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { CollectionRule, DEFAULT_ID_TYPE, FieldType, IdType, loadRulesFile, ruleFor, Rules } from './rules.loader';

type Kind = 'read' | 'write';

/** The variables a rule sees: `%user.id` and `%user.<claim>` (id always wins over a claim named id). */
export function userVars(user: AuthUser): QueryVars {
  return { user: { ...(user.claims ?? {}), id: user.id } };
}

/**
 * Who may read and write which documents, from the rules file (SYNC_RULES_FILE). Without a rules
 * file everything is allowed (development; the config refuses production without one).
 *
 * Rules are parsed once at start (an invalid file stops the start with the reason). A rule without
 * `%user` is compiled once; one with `%user` is bound per user and cached on the AuthUser object
 * (WeakMap): the cache goes with the user's sockets, holds at most two entries per rule, and a
 * re-join with other claims (a new AuthUser) never sees a rule bound to the old claims.
 */
@Injectable()
export class PermissionService {
  private readonly logger = new Logger('Permissions');
  private readonly rules: Rules | null;
  private readonly shared = new Map<QueryNode, CompiledQuery>();
  private readonly perUser = new WeakMap<AuthUser, Map<QueryNode, CompiledQuery>>();

  constructor(@Optional() @Inject(APP_CONFIG) config?: AppConfig) {
    const file = config?.sync.rulesFile;
    this.rules = file ? loadRulesFile(file) : null;
    if (this.rules) this.logger.log(`rules loaded from ${file} (${this.rules.collections.size} collections)`);
    else if (config && config.env !== 'test') this.logger.warn('no SYNC_RULES_FILE: every user may read and write everything (development only)');
  }

  /** Whether rules are in force (false: allow-all development mode). */
  get enabled(): boolean {
    return this.rules !== null;
  }

  /** The compiled rule of a collection for a user (null: no rules, everything allowed). */
  rule(user: AuthUser, collection: string, kind: Kind): CompiledQuery | null {
    if (!this.rules) return null;
    const node = (ruleFor(this.rules, collection) as CollectionRule)[kind];
    if (!usesUserVars(node)) {
      let q = this.shared.get(node);
      if (!q) this.shared.set(node, (q = bindQuery(node, [], {})));
      return q;
    }
    let cache = this.perUser.get(user);
    if (!cache) this.perUser.set(user, (cache = new Map()));
    let q = cache.get(node);
    if (!q) {
      try {
        q = bindQuery(node, [], userVars(user));
      } catch (e) {
        // a claim of an unusable shape (an object, an array outside IN): the rule denies
        this.logger.warn(`rule of ${collection}.${kind} cannot be bound for user ${user.id}: ${(e as Error).message}`);
        q = bindQuery(parseFalse(), [], {});
      }
      cache.set(node, q);
    }
    return q;
  }

  /** Whether `user` may see `doc` of `collection`. */
  canRead(user: AuthUser, collection: string, doc: SyncDocument): boolean {
    const q = this.rule(user, collection, 'read');
    return q === null || q.test(doc);
  }

  /** Whether `user` may change the document from `before` to `after` (null = missing / deleted): both must match the write rule. */
  canWrite(user: AuthUser, collection: string, before: SyncDocument | null, after: SyncDocument | null): boolean {
    const q = this.rule(user, collection, 'write');
    if (q === null) return true;
    if (q.alwaysFalse) return false;
    return (before === null || q.test(before)) && (after === null || q.test(after));
  }

  /** How the collection's `_id`s are stored (the rules file's `idType`; `auto` without one). */
  idType(collection: string): IdType {
    return this.rules ? ruleFor(this.rules, collection).idType : DEFAULT_ID_TYPE;
  }

  /** The rules file's `fieldTypes` of a collection (undefined: none). */
  fieldTypes(collection: string): Readonly<Record<string, FieldType>> | undefined {
    return this.rules ? ruleFor(this.rules, collection).fieldTypes : undefined;
  }

  /** MongoDB filter selecting what `user` may read in `collection` ({} = all, null = nothing). */
  readFilter(user: AuthUser, collection: string): Record<string, unknown> | null {
    const q = this.rule(user, collection, 'read');
    if (q === null || q.alwaysTrue) return {};
    if (q.alwaysFalse) return null;
    return q.mongo;
  }
}

const FALSE_NODE: QueryNode = parseQuery('FALSEPREDICATE');
const parseFalse = () => FALSE_NODE;
