import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { SyncModule } from '../sync/sync.module';
import { AdminGuard } from './admin.guard';
import { ConsoleController } from './console.controller';
import { ConsoleRepository } from './console.repository';
import { ConsoleSampler } from './console.sampler';

/** The operator console (/console, /api/admin/overview, /api/audit) and /asyncapi.json. */
@Module({
  imports: [AuthModule, SyncModule],
  controllers: [ConsoleController],
  providers: [AdminGuard, ConsoleRepository, ConsoleSampler],
})
export class ConsoleModule {}
