/* Preloaded into the server process by the benchmark (node -r bench/lib/server-probe.js), only when
 * it runs under the harness: answers on the IPC channel with the process's memory after a full
 * garbage collection (the server runs with --expose-gc), and starts/stops the V8 CPU profiler so a
 * profile covers exactly a measured window. The server's own code is untouched. */
'use strict';
const fs = require('node:fs');
const inspector = require('node:inspector');

if (typeof process.send === 'function') {
  let session;
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params || {}, (err, res) => (err ? reject(err) : resolve(res))));
  const handlers = {
    async memory({ gc }) {
      if (gc && typeof global.gc === 'function') {
        global.gc();
        global.gc();
      }
      return { ...process.memoryUsage(), handles: process.getActiveResourcesInfo ? process.getActiveResourcesInfo().length : undefined };
    },
    async heapSnapshot({ file }) {
      if (typeof global.gc === 'function') global.gc();
      return { file: require('node:v8').writeHeapSnapshot(file) };
    },
    async profileStart({ samplingIntervalUs }) {
      session = session || new inspector.Session();
      try {
        session.connect();
      } catch {
        /* already connected */
      }
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: samplingIntervalUs || 500 });
      await post('Profiler.start');
      return { started: true };
    },
    async profileStop({ file }) {
      const { profile } = await post('Profiler.stop');
      fs.writeFileSync(file, JSON.stringify(profile));
      await post('Profiler.disable');
      return { file };
    },
  };
  process.on('message', (m) => {
    if (!m || m.__benchProbe !== true) return;
    const h = handlers[m.cmd];
    const reply = (msg) => process.send && process.send({ __benchProbe: true, id: m.id, ...msg });
    if (!h) return reply({ error: `unknown probe command ${m.cmd}` });
    h(m.args || {}).then(
      (result) => reply({ result }),
      (e) => reply({ error: String((e && e.message) || e) }),
    );
  });
  // the channel must not keep the server alive on shutdown
  if (process.channel && process.channel.unref) process.channel.unref();
}

// the harness went away (crash, Ctrl-C): do not leave the server running
if (typeof process.send === 'function') process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
