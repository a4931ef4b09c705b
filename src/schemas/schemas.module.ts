import { Global, Module } from '@nestjs/common';
import { CollectionSchemaService } from './collection-schema.service';

/** Collection schemas (SYNC_SCHEMAS_FILE or the rules file), for the write path. */
@Global()
@Module({
  providers: [CollectionSchemaService],
  exports: [CollectionSchemaService],
})
export class SchemasModule {}
