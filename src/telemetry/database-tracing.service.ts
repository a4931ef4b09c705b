import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent, MongoClient } from 'mongodb';
import type { Connection } from 'mongoose';
import { TRACER_NAME, tracingActive } from './telemetry';

/** Commands in flight at once that get a span; beyond, commands are not traced (bounded memory). */
const MAX_OPEN_SPANS = 10_000;

/**
 * One client span per database command (MongoDB command monitoring), child of the span active where
 * the command was issued (e.g. `sync.apply`). Only when a recording tracer provider is registered.
 */
@Injectable()
export class DatabaseTracing implements OnModuleInit, OnModuleDestroy {
  private readonly open = new Map<number, Span>();
  private client?: MongoClient;

  constructor(@InjectConnection() private readonly connection: Connection) {}

  onModuleInit(): void {
    // command events exist only on a client created with monitorCommands (DatabaseModule, when tracing)
    const client = this.connection.getClient() as unknown as MongoClient;
    if (!tracingActive() || !client.options.monitorCommands) return;
    this.client = client;
    this.client.on('commandStarted', this.started);
    this.client.on('commandSucceeded', this.succeeded);
    this.client.on('commandFailed', this.failed);
  }

  onModuleDestroy(): void {
    this.client?.off('commandStarted', this.started);
    this.client?.off('commandSucceeded', this.succeeded);
    this.client?.off('commandFailed', this.failed);
    for (const s of this.open.values()) s.end();
    this.open.clear();
  }

  private readonly started = (e: CommandStartedEvent): void => {
    if (this.open.size >= MAX_OPEN_SPANS || e.commandName === 'hello' || e.commandName === 'isMaster') return;
    const collection = typeof e.command[e.commandName] === 'string' ? (e.command[e.commandName] as string) : undefined;
    const span = trace.getTracer(TRACER_NAME).startSpan(
      `mongodb.${e.commandName}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'mongodb',
          'db.namespace': e.databaseName,
          'db.operation.name': e.commandName,
          ...(collection ? { 'db.collection.name': collection } : {}),
        },
      },
      context.active(),
    );
    this.open.set(e.requestId, span);
  };

  private readonly succeeded = (e: CommandSucceededEvent): void => {
    const span = this.open.get(e.requestId);
    if (!span) return;
    this.open.delete(e.requestId);
    span.end();
  };

  private readonly failed = (e: CommandFailedEvent): void => {
    const span = this.open.get(e.requestId);
    if (!span) return;
    this.open.delete(e.requestId);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (e.failure as Error)?.message });
    span.end();
  };
}
