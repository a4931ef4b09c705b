/**
 * Compile-time agreement between the zod schemas and the wire types of ../types.ts (no runtime code):
 * a field renamed or retyped on one side only fails `tsc`.
 */
import type { z } from 'zod/v4';
import type { BootstrapPage, ChangeAck, ClientChange, DeliveredChange, GetChangesRequest, JoinAck, PingAck, ShutdownNotice, SubscribeAck } from '../types';
import type { ChangeAckSchema, ClientChangeSchema, DeliveredChangeSchema } from './change.schemas';
import type { BootstrapPageSchema, GetChangesRequestSchema, JoinAckSchema, PingAckSchema, ShutdownNoticeSchema, SubscribeAckSchema } from './events.schemas';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assignable<A, B> = [A] extends [B] ? true : false;
const ok = <T extends true>(): T => true as T;

// what a client may send is accepted by the schema
void ok<Assignable<ClientChange, z.input<typeof ClientChangeSchema>>>();
void ok<Assignable<GetChangesRequest, z.input<typeof GetChangesRequestSchema>>>();
// what the server answers fits the schemas, and back
void ok<Same<Omit<DeliveredChange, 'data'>, Omit<z.output<typeof DeliveredChangeSchema>, 'data'>>>();
void ok<Same<Omit<BootstrapPage, 'data'>, Omit<z.output<typeof BootstrapPageSchema>, 'data'>>>();
void ok<Same<JoinAck, z.output<typeof JoinAckSchema>>>();
void ok<Same<SubscribeAck, z.output<typeof SubscribeAckSchema>>>();
void ok<Same<PingAck, z.output<typeof PingAckSchema>>>();
void ok<Assignable<ChangeAck, z.output<typeof ChangeAckSchema>>>();
void ok<Assignable<ShutdownNotice, z.output<typeof ShutdownNoticeSchema>>>();
