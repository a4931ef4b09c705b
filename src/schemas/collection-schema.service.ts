import { Inject, Injectable, Logger } from '@nestjs/common';
import { InvalidPayloadError, SyncDocument } from '@sync/protocol';
import type { ValidateFunction } from 'ajv';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { compileCollectionSchemas, describeViolation, loadCollectionSchemas, SERVER_FIELDS } from './collection-schemas';

/**
 * Optional JSON Schemas per collection (docs/SCHEMAS.md), compiled once at boot and checked on the
 * document a change results in (after conflict resolution), on every write path.
 */
@Injectable()
export class CollectionSchemaService {
  private readonly logger = new Logger('CollectionSchemas');
  private readonly validators: Map<string, ValidateFunction>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.validators = compileCollectionSchemas(loadCollectionSchemas({ schemasFile: config.sync.schemasFile, rulesFile: config.sync.rulesFile }));
    if (this.validators.size) this.logger.log(`collection schemas: ${[...this.validators.keys()].join(', ')}`);
  }

  /** The collections that have a schema. */
  get collections(): string[] {
    return [...this.validators.keys()];
  }

  /**
   * Checks the document a change results in (`null` for a delete: nothing to check). Returns the
   * INVALID_PAYLOAD error to answer, with `details: { pointer, message }`, or null when it fits.
   */
  check(collection: string, after: SyncDocument | null, changeId?: string): InvalidPayloadError | null {
    const validate = this.validators.get(collection);
    if (!validate || after === null) return null;
    // the document as clients see it: stored BSON values (ObjectId, Date) in their JSON form
    const doc = JSON.parse(JSON.stringify(after)) as SyncDocument;
    for (const f of SERVER_FIELDS) delete doc[f];
    if (validate(doc)) return null;
    const details = describeViolation(validate.errors![0]);
    return new InvalidPayloadError(`the document would not match the schema of "${collection}": ${details.pointer} ${details.message}`, {
      ...(changeId === undefined ? {} : { changeId }),
      details,
    });
  }

  /**
   * The same refusal without saying what is wrong: for a user who may not read the document (the
   * pointer and message could name fields of a stored version that user may not see).
   */
  withoutDetails(collection: string, changeId?: string): InvalidPayloadError {
    return new InvalidPayloadError(`the document would not match the schema of "${collection}"`, changeId === undefined ? {} : { changeId });
  }
}
