/*
 * Runs the sync server with the example extensions (docs/EXTENDING.md):
 *   AUTH_MODE=dev npx tsx examples/extending/main.ts
 * One node has nobody to share the in-process hub with; it is there to show where a bus plugs in.
 */
import 'reflect-metadata';
import { createApp } from '../../src/bootstrap';
import { loadConfig } from '../../src/config/config.loader';
import { ExtendingModule, InProcessHub } from './extending.module';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApp({ config, extensions: [ExtendingModule.forRoot({ hub: new InProcessHub(), node: 'example' })] });
  await app.listen(config.server.port, config.server.host);
  console.log(`sync server with the example extensions on ${await app.getUrl()}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
