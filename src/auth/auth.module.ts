import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import { AuthService } from './auth.service';
import { HttpAuthGuard, ServiceAuthGuard } from './guards/http-auth.guard';

@Module({
  imports: [JwtModule.register({})],
  providers: [AuthService, HttpAuthGuard, ServiceAuthGuard],
  exports: [AuthService, HttpAuthGuard, ServiceAuthGuard],
})
export class AuthModule {}
