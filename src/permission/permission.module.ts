import { Global, Module } from '@nestjs/common';
import { PermissionService } from './permission.service';

/** The rules-file PermissionService, one instance for the whole application. */
@Global()
@Module({
  providers: [PermissionService],
  exports: [PermissionService],
})
export class PermissionModule {}
