/**
 * The example client of the README (`npx ts-node client/example.ts demo-user-2`): a shared task
 * list in the terminal. The code lives in libs/client/examples/example.ts (also `npm run dev:client`).
 */
import '../libs/client/examples/example';
