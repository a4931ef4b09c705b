import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import { AuthService } from './auth.service';
import { SocketAuthService } from './socket-auth.service';

@Module({
  imports: [JwtModule.register({})],
  providers: [AuthService, SocketAuthService],
  exports: [AuthService, SocketAuthService],
})
export class AuthModule {}
