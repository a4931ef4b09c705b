import { Global, Module } from '@nestjs/common';
import { DrainService } from './drain.service';

/** A node's graceful stop (DrainService): the Socket.IO adapter, /ready and the bootstrap's signal handler use it. */
@Global()
@Module({
  providers: [DrainService],
  exports: [DrainService],
})
export class LifecycleModule {}
