import { Module } from '@nestjs/common';
import { AdminGrant } from './admin-grant';
import { AuthService } from './auth.service';
import { HttpAuthGuard, ServiceAuthGuard } from './guards/http-auth.guard';

@Module({
  providers: [AuthService, AdminGrant, HttpAuthGuard, ServiceAuthGuard],
  exports: [AuthService, AdminGrant, HttpAuthGuard, ServiceAuthGuard],
})
export class AuthModule {}
