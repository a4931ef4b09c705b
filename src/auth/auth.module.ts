import { Module } from '@nestjs/common';
import { AdminGrant } from './admin-grant';
import { AuthService } from './auth.service';
import { HttpAuthGuard, ServiceAuthGuard } from './guards/http-auth.guard';
import { SocketAuthService } from './socket-auth.service';

@Module({
  providers: [AuthService, AdminGrant, SocketAuthService, HttpAuthGuard, ServiceAuthGuard],
  exports: [AuthService, AdminGrant, SocketAuthService, HttpAuthGuard, ServiceAuthGuard],
})
export class AuthModule {}
