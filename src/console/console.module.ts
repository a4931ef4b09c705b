import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { FeedModule } from '../feed/feed.module';
import { AdminGuard } from '../auth/guards/admin.guard';
import { ConsoleController } from './console.controller';
import { ConsoleRepository } from './console.repository';
import { ConsoleSampler } from './console.sampler';

/** The operator console (/console, /api/admin/overview, /api/audit) and /asyncapi.json. */
@Module({
  imports: [AuthModule, FeedModule],
  controllers: [ConsoleController],
  providers: [AdminGuard, ConsoleRepository, ConsoleSampler],
})
export class ConsoleModule {}
