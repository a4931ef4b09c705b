import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import { AuthService } from './auth.service';
import { HttpAuthGuard, ServiceAuthGuard } from './guards/http-auth.guard';
import { SocketAuthService } from '../gateway/socket-auth.service';

@Module({
  imports: [JwtModule.register({})],
  providers: [AuthService, SocketAuthService, HttpAuthGuard, ServiceAuthGuard],
  exports: [AuthService, SocketAuthService, HttpAuthGuard, ServiceAuthGuard],
})
export class AuthModule {}
