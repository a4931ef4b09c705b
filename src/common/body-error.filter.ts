import { ArgumentsHost, Catch, HttpException, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import type { Response } from 'express';

/** What body-parser throws for a body it refuses (too large, not JSON, bad charset...). */
interface BodyParserError {
  type: string;
  status: number;
  expose?: boolean;
  message: string;
}

function isBodyParserError(e: unknown): e is BodyParserError {
  const err = e as Partial<BodyParserError> | null;
  return !!err && typeof err === 'object' && typeof err.type === 'string' && typeof err.status === 'number' && err.status >= 400 && err.status < 500;
}

/**
 * A request body the parser refuses is the client's fault: it is answered with its 4xx and a short
 * message, and logged at debug level. Without this filter Nest logged each one as an error with a
 * stack trace, so anyone could fill the logs by posting broken bodies. Everything else goes to Nest's
 * own handling, unchanged.
 */
@Catch()
export class BodyErrorFilter extends BaseExceptionFilter {
  private readonly logger = new Logger('HTTP');

  override catch(exception: unknown, host: ArgumentsHost): void {
    if (!(exception instanceof HttpException) && isBodyParserError(exception) && host.getType() === 'http') {
      const res = host.switchToHttp().getResponse<Response>();
      this.logger.debug(`request body refused: ${exception.type} (${exception.status})`);
      if (!res.headersSent) {
        const message = exception.status === 413 ? 'request body too large' : exception.expose ? exception.message : 'bad request body';
        res.status(exception.status).json({ statusCode: exception.status, message });
      }
      return;
    }
    super.catch(exception, host);
  }
}
